"""Moving bytes: uploading missing blobs, downloading entries (verified), checking stored content."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from branchline.artifacts.errors import ArtifactIntegrityError
from branchline.artifacts.hashing import FileStat, digest_files, file_stat, sha256_file, shared_cache
from branchline.artifacts.manifest import ArtifactManifestEntry
from branchline.artifacts.references import check_reference, expected_sha256, open_reference
from branchline.errors import UsageError

if TYPE_CHECKING:
    from branchline.artifacts.backend import ArtifactBackend

__all__ = ["BlobSink", "download_entries", "upload_missing", "verify_directory", "verify_stored"]

T = TypeVar("T")
R = TypeVar("R")


def _parallel(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    if len(items) <= 1 or workers <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


class BlobSink(Protocol):
    """Where uploads go: a backend, or a bare blob store adapter (offline staging)."""

    workers: int

    def missing_blobs(self, digests: Collection[str]) -> set[str]: ...
    def upload_blob(self, digest: str, path: str, expected_stat: FileStat | None) -> None: ...


def upload_missing(backend: BlobSink, entries: Sequence[ArtifactManifestEntry]) -> int:
    """Ask which blobs the backend lacks, then send only those, in parallel; returns how many."""
    sources: dict[str, ArtifactManifestEntry] = {}
    for entry in entries:
        if entry.ref is None and entry.digest not in sources:
            if entry.local_path is None:
                raise UsageError(f"Entry {entry.path!r} has no local file to upload.")
            sources[entry.digest] = entry
    missing = sorted(backend.missing_blobs(list(sources)))

    def send(digest: str) -> None:
        entry = sources[digest]
        assert entry.local_path is not None
        backend.upload_blob(digest, entry.local_path, entry.local_stat)

    _parallel(send, missing, backend.workers)
    return len(missing)


def _target(root: Path, entry_path: str) -> Path:
    target = (root / entry_path).resolve()
    if root.resolve() not in target.parents:
        raise UsageError(f"Entry path {entry_path!r} points outside the download directory.")
    return target


def _source(backend: ArtifactBackend, entry: ArtifactManifestEntry) -> Iterator[bytes]:
    if entry.ref is not None:
        return open_reference(entry)
    try:
        return backend.open_blob(entry.digest)
    except FileNotFoundError as exc:
        raise ArtifactIntegrityError(f"{entry.path}: {exc}", [entry.path]) from None


def download_entries(
    backend: ArtifactBackend, entries: Sequence[ArtifactManifestEntry], root: Path, *, skip_cache: bool = False
) -> list[str]:
    """Write each entry under `root`, verifying every byte; files already right are left alone."""
    root.mkdir(parents=True, exist_ok=True)
    targets = [_target(root, e.path) for e in entries]
    present = [i for i, t in enumerate(targets) if t.is_file()]
    fresh: set[int] = set()
    if present:
        digests = digest_files([str(targets[i]) for i in present], use_cache=not skip_cache)
        for i, (digest, stat) in zip(present, digests, strict=True):
            entry = entries[i]
            want = expected_sha256(entry)
            if want is not None and digest == want:
                fresh.add(i)
            elif want is None and entry.size is not None and stat[2] == entry.size and entry.ref is not None:
                # An s3:// reference is known by ETag only; same size counts as present.
                fresh.add(i)
    problems: list[str] = []
    written: list[tuple[str, FileStat, str]] = []

    def fetch(i: int) -> None:
        entry, target = entries[i], targets[i]
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        local = backend.blob_path(entry.digest) if entry.ref is None else None
        try:
            if local is not None and local.is_file():
                # A blob on this machine: kernel-side copy, then hash what was written (from the
                # page cache), which measured faster than streaming through Python buffers.
                shutil.copyfile(local, tmp)
                digest = sha256_file(tmp)
            else:
                h = hashlib.sha256()
                with open(tmp, "wb") as out:
                    for chunk in _source(backend, entry):
                        h.update(chunk)
                        out.write(chunk)
                digest = h.hexdigest()
            want = expected_sha256(entry)
            if want is not None and digest != want:
                where = f"blob {entry.digest}" if entry.ref is None else entry.ref
                problems.append(f"{entry.path}: {where} is corrupt (its sha256 is {digest})")
                return
            os.replace(tmp, target)
            # Remember the digest so the next download finds this file present without reading it.
            written.append((os.path.realpath(target), file_stat(target), digest))
        except ArtifactIntegrityError as exc:
            problems.append(str(exc))
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    _parallel(fetch, [i for i in range(len(entries)) if i not in fresh], backend.workers)
    if not skip_cache:
        shared_cache().store(written)
    if problems:
        raise ArtifactIntegrityError(
            f"{len(problems)} file(s) failed verification while downloading:\n  " + "\n  ".join(sorted(problems)),
            sorted(problems),
        )
    return [str(t) for t in targets]


def verify_stored(backend: ArtifactBackend, entries: Sequence[ArtifactManifestEntry]) -> list[str]:
    """Re-hash every stored blob and re-check every reference; returns what is wrong."""
    by_digest: dict[str, list[str]] = {}
    refs: list[ArtifactManifestEntry] = []
    for entry in entries:
        if entry.ref is None:
            by_digest.setdefault(entry.digest, []).append(entry.path)
        else:
            refs.append(entry)

    def check_blob(digest: str) -> str | None:
        h = hashlib.sha256()
        try:
            for chunk in backend.open_blob(digest):
                h.update(chunk)
        except FileNotFoundError:
            return f"{', '.join(by_digest[digest])}: blob {digest} is missing"
        if h.hexdigest() != digest:
            return f"{', '.join(by_digest[digest])}: blob {digest} is corrupt (its sha256 is {h.hexdigest()})"
        return None

    found = _parallel(check_blob, sorted(by_digest), backend.workers)
    found += _parallel(check_reference, refs, backend.workers)
    return sorted(p for p in found if p)


def verify_directory(entries: Sequence[ArtifactManifestEntry], root: Path) -> list[str]:
    """Compare a downloaded directory with the manifest: missing, changed and extra files."""
    problems: list[str] = []
    expected = {e.path: e for e in entries}
    on_disk = {
        p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".part")
    }
    for extra in sorted(set(on_disk) - set(expected)):
        problems.append(f"{extra}: not part of the artifact")
    common = sorted(set(on_disk) & set(expected))
    for path in sorted(set(expected) - set(on_disk)):
        problems.append(f"{path}: missing")
    digests = digest_files([str(on_disk[p]) for p in common], use_cache=False)
    for path, (digest, stat) in zip(common, digests, strict=True):
        entry = expected[path]
        want = expected_sha256(entry)
        if want is not None and digest != want:
            problems.append(f"{path}: content differs (sha256 {digest}, expected {want})")
        elif want is None and entry.size is not None and stat[2] != entry.size:
            problems.append(f"{path}: size {stat[2]} differs from {entry.size}")
    return problems
