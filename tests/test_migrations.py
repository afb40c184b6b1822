"""Schema migrations: an old store is refused until upgraded, and migrations match create_all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from branchline.errors import SchemaError
from branchline.store import open_store
from branchline.store.engine import current_revision, make_engine, upgrade
from branchline.store.schema import SCHEMA_REVISION
from tests.store_factory import BACKENDS, fresh_url


def _shape(url: str) -> dict[str, Any]:
    """Tables → columns (name, type, nullable), primary key, indexes and unique constraints."""
    engine = make_engine(url)
    try:
        insp = inspect(engine)
        shape: dict[str, Any] = {}
        for table in sorted(t for t in insp.get_table_names() if t != "alembic_version"):
            shape[table] = {
                "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)],
                "pk": insp.get_pk_constraint(table)["constrained_columns"],
                "indexes": sorted((i["name"], tuple(i["column_names"])) for i in insp.get_indexes(table)),
                "unique": sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(table)),
                "fks": sorted(
                    (tuple(f["constrained_columns"]), f["referred_table"]) for f in insp.get_foreign_keys(table)
                ),
            }
        return shape
    finally:
        engine.dispose()


@pytest.mark.parametrize("store_backend", BACKENDS)
def test_store_at_0001_is_refused_until_upgraded(store_backend: str, tmp_path: Path) -> None:
    with fresh_url(store_backend, tmp_path) as url:
        _refused_until_upgraded(url)


def _refused_until_upgraded(url: str) -> None:
    assert upgrade(url, "0001_initial") == "0001_initial"
    with pytest.raises(SchemaError, match="branchline db upgrade") as caught:
        open_store(url)
    assert "0001_initial" in str(caught.value) and SCHEMA_REVISION in str(caught.value)

    # 0002 adds the artifact tables on top of 0001; later revisions build on it.
    assert upgrade(url, "0002_artifacts") == "0002_artifacts"
    engine = make_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert {"artifact_collections", "artifact_versions", "artifact_entries"} <= tables
    finally:
        engine.dispose()

    assert upgrade(url) == SCHEMA_REVISION
    with open_store(url) as store:
        assert store.artifact_versions("e", "p", "nothing") == []
        engine = make_engine(url)
        try:
            assert current_revision(engine) == SCHEMA_REVISION
        finally:
            engine.dispose()


@pytest.mark.parametrize("store_backend", BACKENDS)
def test_migrations_build_the_same_schema_as_create_all(store_backend: str, tmp_path: Path) -> None:
    with (
        fresh_url(store_backend, tmp_path / "migrated") as migrated,
        fresh_url(store_backend, tmp_path / "created") as created,
    ):
        upgrade(migrated)
        open_store(created).close()
        a, b = _shape(migrated), _shape(created)
    assert set(a) == set(b)
    assert {
        "artifact_collections",
        "artifact_versions",
        "artifact_entries",
        "artifact_aliases",
        "artifact_usage",
    } <= set(a)
    for table in a:
        assert a[table] == b[table], table


def test_upgrade_to_0004_fills_in_the_sketch_of_every_full_chunk(tmp_path: Path) -> None:
    import numpy as np
    from sqlalchemy import select, text

    from branchline.store import history as hist
    from branchline.store.schema import history_chunks

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0003_auth")
    steps = np.arange(5_000, dtype=np.int64)
    values = np.sin(steps / 100.0)
    rows = [
        {k: v for k, v in row.items() if k != "sketch"}
        for row in hist.split_into_chunks(0, steps, values, "f")  # 2 full chunks and a tail
    ]
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for row in rows:
                conn.execute(
                    text(
                        "INSERT INTO history_chunks (incarnation_id, stream, key, chunk, first_step, last_step, count,"
                        " dtype, steps, vals, vmin, vmax, vsum, vcount) VALUES ('inc', 0, 'loss', :chunk, :first_step,"
                        " :last_step, :count, :dtype, :steps, :vals, :vmin, :vmax, :vsum, :vcount)"
                    ),
                    row,
                )
    finally:
        engine.dispose()

    assert upgrade(url) == SCHEMA_REVISION
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            got = conn.execute(select(history_chunks.c.chunk, history_chunks.c.sketch).order_by("chunk")).all()
    finally:
        engine.dispose()
    assert [chunk for chunk, _ in got] == [0, 1, 2]
    assert got[0][1] == hist.encode_sketch(steps[:2048], values[:2048])
    assert got[1][1] == hist.encode_sketch(steps[2048:4096], values[2048:4096])
    assert got[2][1] is None  # the open tail is read whole


@pytest.mark.parametrize("store_backend", BACKENDS)
def test_upgrade_to_0005_adds_the_workspaces_table_to_a_store_with_runs(store_backend: str, tmp_path: Path) -> None:
    with fresh_url(store_backend, tmp_path) as url:
        assert upgrade(url, "0004_chunk_sketch") == "0004_chunk_sketch"
        engine = make_engine(url)
        try:
            assert "workspaces" not in inspect(engine).get_table_names()
        finally:
            engine.dispose()
        upgrade(url)
        with open_store(url) as store:
            assert store.get_workspace("e", "p") is None
            assert store.save_workspace("e", "p", {"sections": []}, expected_version=0).version == 1


@pytest.mark.parametrize("store_backend", BACKENDS)
def test_upgrade_to_0007_adds_the_pending_upload_tables(store_backend: str, tmp_path: Path) -> None:
    from branchline.store.pending_uploads import PendingUpload

    with fresh_url(store_backend, tmp_path) as url:
        assert upgrade(url, "0006_run_privacy") == "0006_run_privacy"
        engine = make_engine(url)
        try:
            assert "wandb_artifact_uploads" not in inspect(engine).get_table_names()
        finally:
            engine.dispose()
        assert upgrade(url) == SCHEMA_REVISION
        with open_store(url) as store:
            upload = PendingUpload("u", "e", "p", "ds", "dataset", "d", None, {}, [], None, "c", 1.0)
            store.create_pending_upload(upload)
            assert store.add_pending_upload_file("u", "a.txt", "a" * 64, 1)
            assert store.get_pending_upload("u") == PendingUpload(
                "u", "e", "p", "ds", "dataset", "d", None, {}, [], None, "c", 1.0, {"a.txt": ("a" * 64, 1)}
            )
