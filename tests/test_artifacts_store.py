"""Artifact rows through the Store on every backend (SQLite, and PostgreSQL when reachable)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from branchline.artifacts import Artifact, embedded_backend, public
from branchline.errors import UsageError
from branchline.store import Store, open_store
from branchline.store.artifacts import LOGGED, USED, EntryRow, VersionRow

from . import store_factory
from .store_factory import add_run

any_store_url = store_factory.any_store_url


@pytest.fixture
def store(any_store_url: str) -> Iterator[Store]:
    s = open_store(any_store_url)
    yield s
    s.close()


def _commit(store: Store, digest: str, files: dict[str, str], **kwargs: object) -> tuple[VersionRow, bool]:
    fields: dict[str, object] = {
        "entity": "e",
        "project": "p",
        "name": "ds",
        "type": "dataset",
        "digest": digest,
        "entries": [EntryRow(path, d, 10) for path, d in files.items()],
        "description": None,
        "metadata": {"k": 1},
        "aliases": [],
        "incarnation_id": None,
        "role": LOGGED,
    }
    fields.update(kwargs)
    return store.commit_artifact(**fields)


def test_versions_aliases_lineage_and_delete_on_each_backend(store: Store) -> None:
    producer = add_run(store, project="p", run_id="producer")
    consumer = add_run(store, project="q", run_id="consumer")
    a, b = "a" * 64, "b" * 64

    v0, created = _commit(store, "1" * 64, {"x.bin": a}, aliases=["best"], incarnation_id=producer.incarnation_id)
    assert created and v0.version == "v0" and v0.aliases == ["best", "latest"]
    same, created = _commit(store, "1" * 64, {"x.bin": a}, incarnation_id=consumer.incarnation_id)
    assert not created and same.id == v0.id
    v1, _ = _commit(store, "2" * 64, {"x.bin": a, "y.bin": b}, aliases=["best"])
    assert v1.version == "v1" and v1.size == 20 and v1.file_count == 2
    best = store.resolve_artifact("e", "p", "ds", "best")
    assert best is not None and best.id == v1.id
    assert store.resolve_artifact("e", "p", "ds", "v0").aliases == []
    with pytest.raises(UsageError, match="has type 'dataset'"):
        _commit(store, "3" * 64, {}, type="model")

    store.use_artifact(v1.id, consumer.incarnation_id)
    store.use_artifact(v1.id, consumer.incarnation_id)  # idempotent
    assert [r.version for r in store.run_artifacts(consumer.incarnation_id, USED)] == ["v1"]
    assert [r.version for r in store.run_artifacts(consumer.incarnation_id, LOGGED)] == ["v0"]
    assert store.artifact_users(v0.id, LOGGED) == [producer.incarnation_id, consumer.incarnation_id]
    assert store.get_artifact(v0.id).created_by == producer.incarnation_id

    store.set_artifact_aliases(v0.id, ["prod"])
    assert store.resolve_artifact("e", "p", "ds", "prod").id == v0.id
    with pytest.raises(UsageError, match="prod"):
        store.delete_artifact(v0.id)
    assert sorted(store.delete_artifact(v1.id, delete_aliases=True)) == sorted([a, b])
    assert store.resolve_artifact("e", "p", "ds", "latest").id == v0.id
    assert store.referenced_blobs([a, b]) == {a}
    assert [c["versions"] for c in store.artifact_collections("e", "p")] == [1]
    v2, _ = _commit(store, "4" * 64, {"z.bin": b})
    assert v2.version == "v2"


def test_sdk_artifact_round_trip_on_each_backend(store: Store, tmp_path: Path) -> None:
    """An Artifact logged through the backend of any store, blobs in a directory."""
    backend = embedded_backend(store, (tmp_path / "blobs").as_uri())
    run = add_run(store, project="p", run_id="r")
    (tmp_path / "w.txt").write_text("weights")
    art = Artifact("m", "model")
    art.add_file(tmp_path / "w.txt")
    art._commit(backend, entity="e", project="p", aliases=["best"], incarnation_id=run.incarnation_id, role=LOGGED)
    got = public.artifact(store, "e/p/m:best", blob_url=(tmp_path / "blobs").as_uri())
    assert got.logged_by().run_id == "r"
    assert (Path(got.download(tmp_path / "out")) / "w.txt").read_text() == "weights"
