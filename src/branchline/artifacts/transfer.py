"""Moving bytes: uploading missing blobs, downloading entries (verified), checking stored content."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING, Protocol, TypeVar

from branchline.artifacts.blobstores import copy_fd
from branchline.artifacts.errors import ArtifactIntegrityError
from branchline.artifacts.hashing import FileStat, digest_files, hash_fd, parallel_map, shared_cache, stat_key
from branchline.artifacts.manifest import ArtifactManifestEntry
from branchline.artifacts.references import check_reference, expected_sha256, open_reference
from branchline.artifacts.staging import refuse_changed, remember_stored
from branchline.errors import UsageError

if TYPE_CHECKING:
    from branchline.artifacts.backend import ArtifactBackend

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

__all__ = [
    "BlobSink",
    "VersionFetcher",
    "default_download_root",
    "download_entries",
    "upload_missing",
    "verify_directory",
    "verify_stored",
]

T = TypeVar("T")
R = TypeVar("R")


def _parallel(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    return parallel_map(fn, items, workers)


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
        refuse_changed(entry)  # before any request: a server sees no upload abandoned half way
        backend.upload_blob(digest, entry.local_path, entry.local_stat)

    _parallel(send, missing, backend.workers)
    remember_stored(sources)  # re-adding this content in this process need not copy it again
    return len(missing)


def _targets(root: Path, entries: Sequence[ArtifactManifestEntry]) -> list[str]:
    """Each entry's file under `root`, which must stay inside it; creates the directories.

    Each directory is resolved (symlinks followed) and created once, not once per file.
    """
    base = root.resolve()
    folders: dict[str, str] = {}
    out = []
    for entry in entries:
        parent, _, name = entry.path.rpartition("/")
        folder = folders.get(parent)
        if folder is None:
            resolved = (base / parent).resolve() if parent else base
            if resolved != base and base not in resolved.parents:
                raise UsageError(f"Entry path {entry.path!r} points outside the download directory.")
            folder = folders[parent] = str(resolved)
        if name in ("", ".", ".."):
            raise UsageError(f"Entry path {entry.path!r} is not a file path.")
        out.append(os.path.join(folder, name))
    for folder in folders.values():
        os.makedirs(folder, exist_ok=True)
    return out


def _source(backend: ArtifactBackend, entry: ArtifactManifestEntry) -> Iterator[bytes]:
    if entry.ref is not None:
        return open_reference(entry)
    try:
        return backend.open_blob(entry.digest)
    except FileNotFoundError as exc:
        raise ArtifactIntegrityError(f"{entry.path}: {exc}", [entry.path]) from None


def _is_file(path: str) -> bool:
    """A regular file, not a symlink: a link is replaced by the download, never followed."""
    try:
        return S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def default_download_root() -> Path:
    """$BRANCHLINE_ARTIFACT_DIR (or $WANDB_ARTIFACT_DIR), else ./artifacts."""
    return Path(os.environ.get("BRANCHLINE_ARTIFACT_DIR") or os.environ.get("WANDB_ARTIFACT_DIR") or "artifacts")


@dataclass(frozen=True)
class VersionFetcher:
    """Downloads a logged version's entries from its backend, by default into `<root>/<name>:<version>`."""

    backend: ArtifactBackend
    directory: str  # "<name>:<version>"

    def fetch(self, entries: list[ArtifactManifestEntry], root: str | None) -> list[str]:
        target = Path(root) if root is not None else default_download_root() / self.directory
        return download_entries(self.backend, entries, target)


def download_entries(
    backend: ArtifactBackend, entries: Sequence[ArtifactManifestEntry], root: Path, *, skip_cache: bool = False
) -> list[str]:
    """Write each entry under `root`, verifying every byte; files already right are left alone."""
    root.mkdir(parents=True, exist_ok=True)
    targets = _targets(root, entries)
    present = [i for i, t in enumerate(targets) if _is_file(t)]
    fresh: set[int] = set()
    if present:
        digests = digest_files([targets[i] for i in present], use_cache=not skip_cache)
        for i, (digest, st) in zip(present, digests, strict=True):
            entry = entries[i]
            want = expected_sha256(entry)
            if want is not None and digest == want:
                fresh.add(i)
            elif want is None and entry.size is not None and st[2] == entry.size and entry.ref is not None:
                # An s3:// reference is known by ETag only; same size counts as present.
                fresh.add(i)
    problems: list[str] = []
    written: list[tuple[str, FileStat, str]] = []
    token = secrets.token_hex(4)

    def fetch(i: int) -> None:
        entry, target = entries[i], targets[i]
        folder, name = os.path.split(target)
        tmp = os.path.join(folder, f".{name}.{token}{i}.part")
        local = backend.blob_path(entry.digest) if entry.ref is None else None
        src = -1
        if local is not None:
            with contextlib.suppress(FileNotFoundError):
                src = os.open(local, os.O_RDONLY | _CLOEXEC)
        # Read-write: the copy is hashed back from the same descriptor, so what is checked is
        # exactly what landed in the file.
        out = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o666)
        renamed = False
        try:
            if src >= 0 and copy_fd(src, out):
                # A blob on this machine: kernel-side copy, then hash the result (from the page
                # cache). Measured faster than one pass through Python buffers.
                os.lseek(out, 0, os.SEEK_SET)
                digest = hash_fd(out)
            else:
                h = hashlib.sha256()
                with open(out, "wb", closefd=False) as sink:
                    sink.truncate(0)
                    for chunk in _source(backend, entry):
                        h.update(chunk)
                        sink.write(chunk)
                digest = h.hexdigest()
            want = expected_sha256(entry)
            if want is not None and digest != want:
                where = f"blob {entry.digest}" if entry.ref is None else entry.ref
                problems.append(f"{entry.path}: {where} is corrupt (its sha256 is {digest})")
                return
            os.replace(tmp, target)
            renamed = True
            # Remember the digest so the next download finds this file present without reading
            # it. fstat after the rename: the rename changes the ctime the cache compares.
            written.append((target, stat_key(os.fstat(out)), digest))
        except ArtifactIntegrityError as exc:
            problems.append(str(exc))
        finally:
            os.close(out)
            if src >= 0:
                os.close(src)
            if not renamed:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    _parallel(fetch, [i for i in range(len(entries)) if i not in fresh], backend.workers)
    if not skip_cache:
        shared_cache().store(written)
    if problems:
        raise ArtifactIntegrityError(
            f"{len(problems)} file(s) failed verification while downloading:\n  " + "\n  ".join(sorted(problems)),
            sorted(problems),
        )
    return targets


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
