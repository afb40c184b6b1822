"""Artifacts in embedded mode: versions, aliases, dedup, lineage, references, download and verify."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import branchline
from branchline.artifacts import ArtifactIntegrityError, ArtifactNotFoundError, ArtifactNotLoggedError, public
from branchline.artifacts.errors import ArtifactFinalizedError
from branchline.errors import UsageError
from branchline.sdk.run import Run
from branchline.store import Store

from .conftest import QUIET, store_at


@pytest.fixture(autouse=True)
def digest_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRANCHLINE_CACHE_DIR", str(tmp_path / ".cache"))


def start(tmp_path: Path, project: str = "p", **kwargs: Any) -> Run:
    return branchline.init(project=project, dir=str(tmp_path), settings=dict(QUIET), **kwargs)


def make_dir(root: Path, count: int, size: int = 1000, seed: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (root / f"f{i:03d}.bin").write_bytes((f"{seed}file-{i}-".encode() * (size // 8 + 1))[:size])
    return root


def blob_bytes(tmp_path: Path) -> tuple[int, int]:
    """(count, total bytes) of blobs in the default local blob store."""
    files = [p for p in (tmp_path / "branchline" / "blobs").glob("??/*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[Store]:
    s = store_at(tmp_path)
    yield s
    s.close()


def test_versions_reuse_same_digest_and_move_aliases(tmp_path: Path) -> None:
    data = make_dir(tmp_path / "data", 3)
    run = start(tmp_path)
    first = branchline.Artifact("ds", "dataset", description="first", metadata={"rows": 3})
    first.add_dir(data)
    assert first.state == "PENDING"
    with pytest.raises(ArtifactNotLoggedError):
        _ = first.version
    run.log_artifact(first, aliases=["best"])
    assert (first.name, first.version, first.state) == ("ds:v0", "v0", "COMMITTED")
    assert sorted(first.aliases) == ["best", "latest"]

    (data / "f000.bin").write_bytes(b"changed")
    second = branchline.Artifact("ds", "dataset")
    second.add_dir(data)
    second.aliases = ["from-draft"]
    run.log_artifact(second, aliases="best")
    assert second.version == "v1"
    assert sorted(second.aliases) == ["best", "from-draft", "latest"]
    assert second.digest != first.digest

    # Same content as v1 again: no v2, the existing version comes back.
    again = branchline.Artifact("ds", "dataset", metadata={"other": True})
    again.add_dir(data)
    run.log_artifact(again, aliases=["again"])
    assert again.version == "v1"
    assert sorted(again.aliases) == ["again", "best", "from-draft", "latest"]
    run.finish()

    with store_at(tmp_path) as s:
        versions = public.artifact_versions(s, "dataset", f"{run.entity}/p/ds")
        assert [v.version for v in versions] == ["v1", "v0"]
        assert versions[1].aliases == []  # 'best' and 'latest' moved to v1
        assert versions[1].description == "first" and versions[1].metadata == {"rows": 3}
        assert public.artifact(s, f"{run.entity}/p/ds:best").version == "v1"
        assert public.artifact(s, "ds:v0", entity=run.entity, project="p").digest == first.digest


def test_latest_follows_relogged_older_content(tmp_path: Path) -> None:
    run = start(tmp_path)
    a = branchline.Artifact("m", "model")
    with a.new_file("w.txt") as f:
        f.write("A")
    run.log_artifact(a)
    b = branchline.Artifact("m", "model")
    with b.new_file("w.txt") as f:
        f.write("B")
    run.log_artifact(b)
    c = branchline.Artifact("m", "model")
    with c.new_file("w.txt") as f:
        f.write("A")
    run.log_artifact(c)
    assert c.version == "v0" and "latest" in c.aliases
    assert run.use_artifact("m:latest").version == "v0"
    run.finish()


def test_alias_edits_and_delete_rules(tmp_path: Path) -> None:
    run = start(tmp_path)
    for text in ("0", "1", "2"):
        art = branchline.Artifact("m", "model")
        with art.new_file("w.txt") as f:
            f.write(text)
        run.log_artifact(art)
    run.finish()

    with store_at(tmp_path) as s:
        path = f"{run.entity}/p/m"
        v1 = public.artifact(s, f"{path}:v1")
        v1.aliases.append("prod")
        v1.description = "promoted"
        v1.metadata = {"acc": 0.9}
        v1.save()
        prod = public.artifact(s, f"{path}:prod")
        assert (prod.version, prod.description, prod.metadata) == ("v1", "promoted", {"acc": 0.9})
        with pytest.raises(UsageError, match="cannot contain"):
            prod.aliases = ["a/b"]

        # An alias points at v1: refused, and the message names it.
        with pytest.raises(UsageError, match="prod"):
            prod.delete()
        public.artifact(s, f"{path}:v0").delete()  # no aliases: allowed
        with pytest.raises(ArtifactNotFoundError):
            public.artifact(s, f"{path}:v0")

        latest = public.artifact(s, f"{path}:latest")
        assert latest.version == "v2"
        latest.delete(delete_aliases=True)
        # `latest` moves to the newest version left.
        assert public.artifact(s, f"{path}:latest").version == "v1"
        assert [v.version for v in public.artifact_versions(s, None, path)] == ["v1"]

    # Version numbers are never reused after a delete.
    run = start(tmp_path)
    art = branchline.Artifact("m", "model")
    with art.new_file("w.txt") as f:
        f.write("3")
    run.log_artifact(art)
    assert art.version == "v3"
    run.finish()


def test_dedup_two_versions_sharing_99_percent(tmp_path: Path) -> None:
    data = make_dir(tmp_path / "data", 100, size=20_000)
    sizes = sum(p.stat().st_size for p in data.iterdir())
    run = start(tmp_path)
    run.log_artifact(str(data), name="ds", type="dataset").wait()
    assert blob_bytes(tmp_path) == (100, sizes)

    (data / "f050.bin").write_bytes(b"x" * 20_000)
    v1 = run.log_artifact(str(data), name="ds", type="dataset")
    assert v1.version == "v1"
    count, total = blob_bytes(tmp_path)
    assert count == 101 and total == sizes + 20_000  # one extra file, nothing else

    # The same files in another project share the blobs too.
    other = start(tmp_path, project="elsewhere")
    other.log_artifact(str(data), name="copy", type="dataset").wait()
    assert blob_bytes(tmp_path) == (101, sizes + 20_000)
    other.finish()
    run.finish()


def test_lineage_both_ways_across_runs_and_projects(tmp_path: Path) -> None:
    producer = start(tmp_path, project="data")
    ds = branchline.Artifact("ds", "dataset")
    with ds.new_file("rows.csv") as f:
        f.write("a,b\n1,2\n")
    producer.log_artifact(ds)
    producer.finish()

    trainer = start(tmp_path, project="train")
    used = trainer.use_artifact(f"{producer.entity}/data/ds:latest", type="dataset")
    assert used.qualified_name == f"{producer.entity}/data/ds:v0"
    with pytest.raises(UsageError, match="type"):
        trainer.use_artifact(f"{producer.entity}/data/ds:v0", type="model")
    model = branchline.Artifact("net", "model")
    with model.new_file("weights.bin", mode="wb") as f:
        f.write(b"\x00\x01")
    trainer.log_artifact(model)
    trainer.finish()

    evaluator = start(tmp_path, project="eval")
    evaluator.use_artifact(f"{producer.entity}/train/net:v0")
    evaluator.use_artifact(f"{producer.entity}/data/ds:v0")
    evaluator.finish()

    with store_at(tmp_path) as s:
        dataset = public.artifact(s, f"{producer.entity}/data/ds:v0")
        assert dataset.logged_by().run_id == producer.id
        assert [r.run_id for r in dataset.used_by()] == [trainer.id, evaluator.id]
        net = public.artifact(s, f"{producer.entity}/train/net:latest")
        assert net.logged_by().run_id == trainer.id
        assert [r.run_id for r in net.used_by()] == [evaluator.id]
        assert [a.name for a in public.logged_artifacts(s, trainer.incarnation_id)] == ["net:v0"]
        assert [a.qualified_name for a in public.used_artifacts(s, trainer.incarnation_id)] == [
            f"{producer.entity}/data/ds:v0"
        ]
        assert [a.name for a in public.used_artifacts(s, evaluator.incarnation_id)] == ["net:v0", "ds:v0"]
        assert public.logged_artifacts(s, evaluator.incarnation_id) == []
        # The Api can hand out its own run objects.
        wrapped = public.artifact(s, f"{producer.entity}/data/ds:v0", wrap_run=lambda v: ("run", v.run_id))
        assert wrapped.logged_by() == ("run", producer.id)


def test_download_verifies_skips_present_files_and_names_corruption(tmp_path: Path) -> None:
    data = make_dir(tmp_path / "data", 5, size=5000)
    run = start(tmp_path)
    art = run.log_artifact(str(data), name="ds", type="dataset")
    run.finish()

    with store_at(tmp_path) as s:
        logged = public.artifact(s, f"{run.entity}/p/ds:v0")
        root = Path(logged.download())
        assert root == Path("artifacts") / "ds:v0"
        assert sorted(p.name for p in root.iterdir()) == sorted(p.name for p in data.iterdir())
        assert (root / "f003.bin").read_bytes() == (data / "f003.bin").read_bytes()
        logged.verify()
        logged.verify(root)

        # Present and right: left alone. Locally edited: fetched again.
        kept = (root / "f001.bin").stat()
        (root / "f002.bin").write_bytes(b"local edit")
        logged.download()
        assert (root / "f001.bin").stat().st_ino == kept.st_ino
        assert (root / "f001.bin").stat().st_mtime_ns == kept.st_mtime_ns
        assert (root / "f002.bin").read_bytes() == (data / "f002.bin").read_bytes()

        (root / "stray.txt").write_text("x")
        with pytest.raises(ArtifactIntegrityError, match=r"stray\.txt: not part of the artifact"):
            logged.verify(root)

        # Corrupt one blob on disk: verify and download name it, and leave no partial file.
        digest = art.get_entry("f004.bin").digest
        blob = tmp_path / "branchline" / "blobs" / digest[:2] / digest[2:]
        blob.chmod(0o644)
        blob.write_bytes(b"bit rot")
        with pytest.raises(ArtifactIntegrityError) as caught:
            logged.verify()
        assert len(caught.value.problems) == 1
        assert caught.value.problems[0].startswith(f"f004.bin: blob {digest} is corrupt (its sha256 is ")
        fresh = tmp_path / "fresh"
        with pytest.raises(ArtifactIntegrityError, match=f"f004.bin: blob {digest} is corrupt"):
            logged.download(fresh)
        assert not (fresh / "f004.bin").exists()
        assert not list(fresh.glob(".*.part"))
        assert (fresh / "f000.bin").exists()  # the good files arrived

        blob.unlink()
        with pytest.raises(ArtifactIntegrityError, match=f"blob {digest} is missing"):
            logged.verify()


def test_file_references_are_not_copied_and_changes_are_caught(tmp_path: Path) -> None:
    outside = make_dir(tmp_path / "outside", 3, size=300)
    single = tmp_path / "single.txt"
    single.write_text("one file")
    run = start(tmp_path)
    art = branchline.Artifact("refs", "dataset")
    art.add_reference(outside.resolve().as_uri(), name="dir")
    entry = art.add_reference(single.resolve().as_uri())[0]
    assert entry.path == "single.txt" and entry.ref == single.resolve().as_uri()
    assert sorted(e.path for e in art.files()) == ["dir/f000.bin", "dir/f001.bin", "dir/f002.bin", "single.txt"]
    run.log_artifact(art)
    run.finish()
    assert blob_bytes(tmp_path) == (0, 0)  # references store no bytes

    with store_at(tmp_path) as s:
        logged = public.artifact(s, f"{run.entity}/p/refs:latest")
        root = Path(logged.download(tmp_path / "dl"))
        assert (root / "dir" / "f001.bin").read_bytes() == (outside / "f001.bin").read_bytes()
        assert (root / "single.txt").read_text() == "one file"
        logged.verify()

        single.write_text("changed")
        with pytest.raises(ArtifactIntegrityError, match=r"single\.txt: the referenced file .* changed"):
            logged.verify()
        with pytest.raises(ArtifactIntegrityError, match=r"single\.txt"):
            logged.download(tmp_path / "dl2")
        (outside / "f000.bin").unlink()
        with pytest.raises(ArtifactIntegrityError, match=r"f000\.bin: the referenced file .* no longer exists"):
            logged.verify()
    with pytest.raises(FileNotFoundError):
        branchline.Artifact("x", "t").add_reference((tmp_path / "nothing").as_uri())


def test_draft_editing_and_validation(tmp_path: Path) -> None:
    for bad in ("has/slash", "has:colon", "", "x" * 129, "spa ce"):
        with pytest.raises(UsageError):
            branchline.Artifact(bad, "dataset")
    for bad_type in ("a/b", "a:b", "", "t" * 129):
        with pytest.raises(UsageError):
            branchline.Artifact("ok", bad_type)
    with pytest.raises(UsageError, match="JSON"):
        branchline.Artifact("ok", "t", metadata={"x": object()})

    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.txt").write_text("b")
    art = branchline.Artifact("ok-name_1.0", "dataset")
    art.add_file(tmp_path / "a.txt", name="sub/a.txt")
    art.add_file(tmp_path / "a.txt", name="sub/a.txt")  # same content again: fine
    with pytest.raises(ValueError, match="different contents"):
        art.add_file(tmp_path / "b.txt", name="sub/a.txt")
    art.add_file(tmp_path / "b.txt", name="sub/a.txt", overwrite=True)
    assert art.get_entry("sub/a.txt").size == 1
    with pytest.raises(UsageError, match=r"'\.\.'"):
        art.add_file(tmp_path / "a.txt", name="../escape.txt")
    with pytest.raises(ValueError, match="not a file"):
        art.add_file(tmp_path / "missing.txt")
    with pytest.raises(KeyError):
        art.get_entry("nope")
    art.remove("sub")  # a directory prefix
    assert art.files() == []
    with pytest.raises(FileNotFoundError):
        art.remove("sub/a.txt")

    # The digest depends on paths and contents, not on order or metadata.
    one = branchline.Artifact("d", "t", metadata={"k": 1})
    one.add_file(tmp_path / "a.txt")
    one.add_file(tmp_path / "b.txt")
    two = branchline.Artifact("d", "t")
    two.add_file(tmp_path / "b.txt")
    two.add_file(tmp_path / "a.txt")
    assert one.digest == two.digest and len(one.digest) == 64

    run = start(tmp_path)
    with pytest.raises(UsageError, match="'v2': 'v<number>' names a version"):
        run.log_artifact(one, aliases=["v2"])
    run.log_artifact(one)
    with pytest.raises(ArtifactFinalizedError):
        one.add_file(tmp_path / "a.txt", name="late.txt")
    other_type = branchline.Artifact("d", "model")
    other_type.add_file(tmp_path / "a.txt")
    pending = run.log_artifact(other_type)  # refused by the commit: wait() says why
    with pytest.raises(UsageError, match="has type 't'"):
        pending.wait()
    with pytest.raises(ArtifactNotFoundError):
        run.use_artifact("nothing-here:latest")
    with pytest.raises(UsageError):
        run.use_artifact("a/b/c/d:latest")
    run.finish()


def test_file_changed_after_add_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "w.txt"
    target.write_text("before")
    art = branchline.Artifact("m", "model")
    art.add_file(target, policy="immutable")  # the opt-out of the copy taken at add time
    target.write_text("after, and longer")
    run = start(tmp_path)
    with pytest.raises(ArtifactIntegrityError, match="changed after it was added"):
        run.log_artifact(art)
    run.finish()
    with store_at(tmp_path) as s:
        assert public.artifact_versions(s, None, f"{run.entity}/p/m") == []
    assert blob_bytes(tmp_path) == (0, 0)


def test_log_artifact_from_paths_and_log_code(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print('hi')\n")
    (tmp_path / "requirements.txt").write_text("numpy\n")
    (tmp_path / "notes.md").write_text("no\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("x = 1\n")
    venv = tmp_path / "env"
    (venv / "lib").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr\n")
    (venv / "lib" / "site.py").write_text("")
    run = start(tmp_path)
    code = run.log_code(".")
    assert code is not None and code.type == "code" and code.name.startswith("source-p-")
    assert [e.path for e in code.files()] == ["pkg/mod.py", "requirements.txt", "train.py"]
    only = run.log_code(".", name="only-pkg", include_fn=lambda path: path.endswith("mod.py"))
    assert only is not None and [e.path for e in only.files()] == ["pkg/mod.py"]
    assert run.log_code(".", include_fn=lambda p, r: False) is None

    single = run.log_artifact(str(tmp_path / "notes.md"))
    assert single.name == f"run-{run.id}-notes.md:v0" and single.type == "unspecified"
    folder = run.log_artifact(str(tmp_path / "pkg"), name="pkg", type="code")
    assert [e.path for e in folder.files()] == ["mod.py"]
    with pytest.raises(ValueError):
        run.log_artifact(str(tmp_path / "absent"))
    run.finish()
    with store_at(tmp_path) as s:
        names = [c["name"] for c in public.artifact_collections(s, run.entity, "p", type="code")]
        assert names == sorted(["only-pkg", "pkg", code.source_name])


def test_offline_stages_then_sync_commits(tmp_path: Path) -> None:
    from branchline.sdk.artifacts import sync_offline_artifacts
    from branchline.sdk.sink import LocalSink
    from branchline.sdk.sync import sync_journal

    data = make_dir(tmp_path / "data", 4)
    run = start(tmp_path, mode="offline")
    art = run.log_artifact(str(data), name="ds", type="dataset", aliases=["first"])
    assert art.is_draft()
    with pytest.raises(TypeError, match="Cannot use artifact when in offline mode"):
        run.use_artifact("ds:latest")
    run_dir = run._res.run_dir
    run.finish()
    staged = [p for p in (run_dir / "artifacts" / "blobs").glob("??/*")]
    assert len(staged) == 4

    url = f"sqlite:///{tmp_path / 'branchline' / 'store.db'}"
    sink = LocalSink(url, 300.0)
    try:
        sync_journal(run_dir / "journal.blj", sink)
    finally:
        sink.close()
    with store_at(tmp_path) as s:
        for _ in range(2):  # idempotent
            rows = sync_offline_artifacts(run_dir, s, entity=run.entity, project="p", incarnation_id=run.incarnation_id)
            assert [r.version for r in rows] == ["v0"]
        synced = public.artifact(s, f"{run.entity}/p/ds:first")
        assert synced.logged_by().run_id == run.id
        synced.verify()
        out = Path(synced.download(tmp_path / "dl"))
        assert sorted(os.listdir(out)) == sorted(os.listdir(data))


def test_garbage_collection_keeps_referenced_blobs(tmp_path: Path) -> None:
    run = start(tmp_path)
    for text in ("shared", "only-in-v1"):
        art = branchline.Artifact("m", "model")
        with art.new_file("common.txt") as f:
            f.write("common")
        with art.new_file("w.txt") as f:
            f.write(text)
        run.log_artifact(art)
    run.finish()
    assert blob_bytes(tmp_path)[0] == 3
    with store_at(tmp_path) as s:
        v1 = public.artifact(s, f"{run.entity}/p/m:v1")
        gone = v1.get_entry("w.txt").digest
        assert public.garbage_collect(s, min_age=0) == []  # everything is referenced
        v1.delete(delete_aliases=True)
        assert public.garbage_collect(s, min_age=3600) == []  # too young
        assert public.garbage_collect(s, min_age=0) == [gone]
        assert blob_bytes(tmp_path)[0] == 2
        public.artifact(s, f"{run.entity}/p/m:latest").verify()


def test_local_blob_store_is_atomic_verifies_and_sweeps_dead_temp_files(tmp_path: Path) -> None:
    import hashlib
    import socket
    import subprocess

    from branchline.artifacts.blobstores import LocalBlobStore, resolve_blob_url

    store = LocalBlobStore(tmp_path / "b", fsync=True)
    src = tmp_path / "x.bin"
    src.write_bytes(b"abc" * 1000)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    assert store.missing([digest]) == {digest}
    store.put_file(digest, str(src))  # no stat given: re-hashed on the way
    assert store.path(digest).read_bytes() == src.read_bytes()
    assert store.path(digest).stat().st_mode & 0o222 == 0  # blobs are read-only
    assert store.missing([digest]) == set()
    assert [d for d, _ in store.digests()] == [digest]
    assert b"".join(store.open(digest)) == src.read_bytes()

    wrong = "0" * 64
    with pytest.raises(ArtifactIntegrityError, match="changed after it was added"):
        store.put_file(wrong, str(src))
    assert store.missing([wrong]) == {wrong}
    assert not list((tmp_path / "b" / "tmp").iterdir())

    dead_pid = subprocess.Popen(["true"])
    dead_pid.wait()
    host = socket.gethostname().replace(".", "_")
    leftover = tmp_path / "b" / "tmp" / f"{'1' * 16}.{host}.{dead_pid.pid}.abcd"
    leftover.write_bytes(b"half a blob")
    LocalBlobStore(tmp_path / "b")
    assert not leftover.exists()

    with pytest.raises(UsageError, match="BRANCHLINE_ARTIFACT_STORAGE"):
        resolve_blob_url("postgresql+psycopg://db/branchline")
    assert resolve_blob_url("postgresql+psycopg://db/x", "s3://bucket/p") == "s3://bucket/p"


def test_storage_location_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "shared-blobs"
    monkeypatch.setenv("BRANCHLINE_ARTIFACT_STORAGE", elsewhere.as_uri())
    run = start(tmp_path)
    art = branchline.Artifact("m", "model")
    with art.new_file("w.txt") as f:
        f.write("weights")
    run.log_artifact(art)
    run.finish()
    digest = art.get_entry("w.txt").digest
    assert (elsewhere / digest[:2] / digest[2:]).read_text() == "weights"
    assert blob_bytes(tmp_path) == (0, 0)


def test_use_of_a_draft_entry_download_and_checkout(tmp_path: Path) -> None:
    run = start(tmp_path)
    draft = branchline.Artifact("inputs", "dataset")
    with draft.new_file("a/x.txt") as f:
        f.write("x")
    with draft.new_file("b.txt") as f:
        f.write("b")
    used = run.use_artifact(draft)
    assert used.version == "v0"
    assert used.logged_by() is None  # used, never logged
    assert [r.run_id for r in used.used_by()] == [run.id]
    run.finish()

    with store_at(tmp_path) as s:
        art = public.artifact(s, f"{run.entity}/p/inputs:v0")
        one = art.get_entry("a/x.txt").download(str(tmp_path / "single"))
        assert Path(one).read_text() == "x" and not (tmp_path / "single" / "b.txt").exists()
        root = tmp_path / "co"
        (root / "old").mkdir(parents=True)
        (root / "old" / "stale.txt").write_text("stale")
        art.checkout(root)
        assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == ["a", "a/x.txt", "b.txt"]
        assert public.artifact_exists(s, f"{run.entity}/p/inputs:v0")
        assert not public.artifact_exists(s, f"{run.entity}/p/inputs:v9")
