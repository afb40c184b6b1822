"""The parallel hash, upload and download paths give exactly what the serial ones give."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

import branchline
from branchline.artifacts import ArtifactIntegrityError, public
from branchline.artifacts.blobstores import LocalBlobStore
from branchline.artifacts.hashing import digest_files, file_stat, parallel_map, real_paths, sha256_file
from branchline.artifacts.manifest import MANIFEST_HEADER

from .conftest import QUIET, store_at


@pytest.fixture(autouse=True)
def digest_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRANCHLINE_CACHE_DIR", str(tmp_path / ".cache"))


def make_tree(root: Path) -> dict[str, bytes]:
    """Files of many sizes (empty, one byte, past the read buffer), nested, some with equal content."""
    files: dict[str, bytes] = {"empty.bin": b"", "one.bin": b"x", "big.bin": os.urandom((1 << 20) * 3 + 17)}
    for i in range(40):
        files[f"d{i % 4}/sub/f{i:02d}.bin"] = os.urandom(1000 * i + 1)
    files["dup/a.bin"] = files["dup/b.bin"] = b"same bytes" * 1000
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(content)
    return files


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_digest_files_serial_and_parallel_agree_with_hashlib(tmp_path: Path) -> None:
    files = make_tree(tmp_path / "data")
    paths = [str(tmp_path / "data" / rel) for rel in files]
    serial = digest_files(paths, use_cache=False, workers=1)
    parallel = digest_files(paths, use_cache=False, workers=4)
    assert serial == parallel
    assert [d for d, _ in serial] == [hashlib.sha256(c).hexdigest() for c in files.values()]
    assert [st for _, st in serial] == [file_stat(p) for p in paths]
    assert sha256_file(paths[0]) == hashlib.sha256(b"").hexdigest()


def test_parallel_map_keeps_order_and_raises_the_first_error() -> None:
    assert parallel_map(lambda i: i * i, list(range(100)), 4) == [i * i for i in range(100)]
    assert parallel_map(lambda i: i, [], 4) == []

    def boom(i: int) -> int:
        if i == 7:
            raise ValueError("item 7")
        return i

    with pytest.raises(ValueError, match="item 7"):
        parallel_map(boom, list(range(50)), 3)


def test_real_paths_match_realpath_through_links(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.txt").write_text("a")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "real" / "b.txt").symlink_to(tmp_path / "real" / "a.txt")
    paths = [str(tmp_path / "link" / "a.txt"), str(tmp_path / "real" / "b.txt"), "relative.txt"]
    assert real_paths(paths) == [os.path.realpath(p) for p in paths]


@pytest.mark.parametrize("workers", [1, 4])
def test_log_and_download_are_the_same_with_one_or_many_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    monkeypatch.setattr(LocalBlobStore, "workers", workers)
    files = make_tree(tmp_path / "data")
    run = branchline.init(project="p", dir=str(tmp_path), settings=dict(QUIET))
    art = branchline.Artifact("ds", "dataset")
    art.add_dir(tmp_path / "data")
    run.log_artifact(art).wait()
    run.finish()
    manifest = {e.path: (e.digest, e.size) for e in art.files()}
    assert manifest == {rel: (hashlib.sha256(c).hexdigest(), len(c)) for rel, c in sorted(files.items())}
    # The version digest is a function of the manifest only, so both worker counts agree on it.
    lines = "".join(f"{p}:{d}\n" for p, (d, _) in sorted(manifest.items()))
    assert art.digest == hashlib.sha256((MANIFEST_HEADER + lines).encode()).hexdigest()
    blobs = tmp_path / "branchline" / "blobs"
    stored = {p.parent.name + p.name: p.read_bytes() for p in blobs.glob("??/*")}
    assert stored == {hashlib.sha256(c).hexdigest(): c for c in files.values()}  # one blob per content
    assert all(p.stat().st_mode & 0o222 == 0 for p in blobs.glob("??/*"))  # read-only
    assert not list((blobs / "tmp").iterdir())

    with store_at(tmp_path) as s:
        logged = public.artifact(s, f"{run.entity}/p/ds:v0")
        assert logged.digest == art.digest
        out = tmp_path / "out"
        logged.download(out)
        assert tree(out) == dict(sorted(files.items()))
        assert not list(out.rglob(".*.part"))
        logged.verify(out)


def test_download_checks_same_size_corruption_and_replaces_links(tmp_path: Path) -> None:
    files = make_tree(tmp_path / "data")
    run = branchline.init(project="p", dir=str(tmp_path), settings=dict(QUIET))
    art = run.log_artifact(str(tmp_path / "data"), name="ds", type="dataset").wait()
    run.finish()
    with store_at(tmp_path) as s:
        logged = public.artifact(s, f"{run.entity}/p/ds:v0")
        out = tmp_path / "out"
        # A symlink where a file goes is replaced, never written through.
        outside = tmp_path / "outside.bin"
        outside.write_bytes(b"keep me")
        (out / "d1" / "sub").mkdir(parents=True)
        (out / "d1" / "sub" / "f01.bin").symlink_to(outside)
        logged.download(out)
        assert outside.read_bytes() == b"keep me"
        assert not (out / "d1" / "sub" / "f01.bin").is_symlink()
        assert tree(out) == dict(sorted(files.items()))

        # One flipped byte, same size: the fast local copy still hashes what it wrote.
        digest = art.get_entry("big.bin").digest
        blob = tmp_path / "branchline" / "blobs" / digest[:2] / digest[2:]
        blob.chmod(0o644)
        content = bytearray(blob.read_bytes())
        content[len(content) // 2] ^= 0xFF
        blob.write_bytes(bytes(content))
        fresh = tmp_path / "fresh"
        with pytest.raises(ArtifactIntegrityError, match=f"big.bin: blob {digest} is corrupt") as caught:
            logged.download(fresh)
        assert len(caught.value.problems) == 1
        assert not (fresh / "big.bin").exists()
        assert not list(fresh.rglob(".*.part"))
        assert (fresh / "one.bin").read_bytes() == b"x"


def test_put_file_rehashes_a_file_whose_stat_changed(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    src = tmp_path / "x.bin"
    src.write_bytes(b"abc" * 100_000)
    ((digest, stat),) = digest_files([str(src)], use_cache=False)
    os.utime(src, ns=(stat[3] + 10**9, stat[3] + 10**9))  # touched, same bytes: stored after a re-hash
    store.put_file(digest, str(src), expected_stat=stat)
    assert store.path(digest).read_bytes() == src.read_bytes()

    other = tmp_path / "y.bin"
    other.write_bytes(b"before")
    ((old, old_stat),) = digest_files([str(other)], use_cache=False)
    other.write_bytes(b"after!")  # same size, new content
    with pytest.raises(ArtifactIntegrityError, match=r"y\.bin changed after it was added"):
        store.put_file(old, str(other), expected_stat=old_stat)
    assert store.missing([old]) == {old}
    assert not list((tmp_path / "blobs" / "tmp").iterdir())
