"""Content-addressed blob storage: the interface, the local-directory store, and URL selection.

A blob is named by the sha256 of its bytes and never changes, so versions and projects share it
and a re-upload of something present is skipped. Every write is atomic: readers see the whole blob
or nothing (temp file + rename here; one PUT or a completed multipart upload on S3).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from branchline.artifacts.errors import changed_after_add
from branchline.artifacts.hashing import CHUNK, FileStat, stat_key, thread_buffer
from branchline.errors import UsageError

__all__ = [
    "FSYNC_ENV",
    "STORAGE_ENV",
    "BlobStore",
    "LocalBlobStore",
    "open_blob_store",
    "resolve_blob_url",
    "verified_chunks",
]

#: Overrides where blobs go: `file:///path` or `s3://bucket/prefix`.
STORAGE_ENV = "BRANCHLINE_ARTIFACT_STORAGE"
#: Set to 1 to fsync every local blob before it is renamed into place.
FSYNC_ENV = "BRANCHLINE_ARTIFACT_FSYNC"


_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def copy_fd(src: int, out: int) -> bool:
    """Copy `src` from offset 0 to its end into `out` inside the kernel; False if sendfile can't."""
    offset = 0
    try:
        while sent := os.sendfile(out, src, offset, 1 << 30):
            offset += sent
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP) and offset == 0:
            return False  # e.g. a file system without sendfile support: the caller streams instead
        raise
    return True


def copy_verified(src: int, out: int, digest: str, path: str) -> None:
    """Copy `src` (from offset 0) into `out` through Python, hashing on the way; raises on a mismatch."""
    os.lseek(src, 0, os.SEEK_SET)
    os.lseek(out, 0, os.SEEK_SET)
    os.ftruncate(out, 0)
    buf = thread_buffer()
    view = memoryview(buf)
    h = hashlib.sha256()
    while n := os.readv(src, [buf]):
        h.update(view[:n])
        written = 0
        while written < n:
            written += os.write(out, view[written:n])
    if h.hexdigest() != digest:
        raise changed_after_add(path, digest, h.hexdigest())


def verified_chunks(path: str, digest: str) -> Iterator[bytes]:
    """The file's bytes in chunks; raises before yielding the last chunk if they don't hash to `digest`.

    Raising before the end means an upload fed by this iterator is abandoned, never completed
    under the wrong name.
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        chunk = fh.read(CHUNK)
        while True:
            following = fh.read(CHUNK) if chunk else b""
            h.update(chunk)
            if not following:
                if h.hexdigest() != digest:
                    raise changed_after_add(path, digest, h.hexdigest())
                if chunk:
                    yield chunk
                return
            yield chunk
            chunk = following


class BlobStore(ABC):
    """Where blob bytes live. Implementations: `LocalBlobStore`, `S3BlobStore`."""

    url: str
    #: How many uploads or downloads to run at once against this store.
    workers: int = 4

    @abstractmethod
    def missing(self, digests: Collection[str]) -> set[str]:
        """The subset of `digests` this store does not hold."""

    @abstractmethod
    def put_file(self, digest: str, path: str, *, expected_stat: FileStat | None = None) -> None:
        """Store the file at `path` as blob `digest`, atomically.

        When the file's stat differs from `expected_stat` (it may have changed since it was
        hashed) the bytes are re-hashed on the way and a mismatch raises ArtifactIntegrityError.
        """

    @abstractmethod
    def open(self, digest: str) -> Iterator[bytes]:
        """Stream a blob's bytes; FileNotFoundError if it is absent."""

    @abstractmethod
    def delete(self, digest: str) -> None:
        """Remove a blob if present."""

    @abstractmethod
    def digests(self) -> Iterator[tuple[str, float]]:
        """Every stored blob as (digest, last-modified unix time)."""

    def local_path(self, digest: str) -> Path | None:
        """A readable path for the blob when it is on this machine's disk."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing
        """Release connections, if any."""


def _is_digest(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


class LocalBlobStore(BlobStore):
    """Blobs as read-only files under `root/ab/cdef…`, written via `root/tmp` and a rename."""

    workers = 4

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool | None = None) -> None:
        self.root = Path(root)
        self.url = self.root.resolve().as_uri()
        # Temp file + rename already makes every blob whole or absent after a process crash.
        # Surviving a power loss as well needs an fsync per blob, which roughly doubles the cost
        # of logging on a busy disk; like the SQLite store (synchronous=NORMAL) and git's loose
        # objects, it is opt-in: BRANCHLINE_ARTIFACT_FSYNC=1. `verify()` finds what a crash broke.
        if fsync is None:
            fsync = os.environ.get(FSYNC_ENV, "").strip().lower() in ("1", "true", "yes", "on")
        self.fsync = fsync
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._root, self._tmp_dir = str(self.root), str(self._tmp)  # str paths: pathlib costs show at 1,000s of files
        self._host = socket.gethostname().replace(".", "_")
        self._sweep_temp()

    def _sweep_temp(self) -> None:
        """Delete temp files of killed uploads: ours by dead pid, anyone's after a day."""
        now = time.time()
        try:
            names = os.listdir(self._tmp)
        except OSError:
            return
        for name in names:
            parts = name.split(".")
            path = self._tmp / name
            try:
                stale = len(parts) >= 4 and parts[1] == self._host and not _pid_alive(int(parts[2]))
                if stale or now - path.stat().st_mtime > 86400:
                    path.unlink()
            except (OSError, ValueError):
                continue

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:]

    def local_path(self, digest: str) -> Path | None:
        return self.path(digest)

    def missing(self, digests: Collection[str]) -> set[str]:
        absent: set[str] = set()
        now = time.time()
        for digest in digests:
            path = self.path(digest)
            try:
                # Refresh the time of blobs about to be reused so garbage collection, which only
                # removes unreferenced blobs older than a grace period, leaves them alone.
                os.utime(path, (now, now))
            except FileNotFoundError:
                absent.add(digest)
            except OSError:
                if not path.exists():
                    absent.add(digest)
        return absent

    def put_file(self, digest: str, path: str, *, expected_stat: FileStat | None = None) -> None:
        final = os.path.join(self._root, digest[:2], digest[2:])
        if os.path.exists(final):
            return
        tmp = os.path.join(self._tmp_dir, f"{digest[:16]}.{self._host}.{os.getpid()}.{secrets.token_hex(4)}")
        src = os.open(path, os.O_RDONLY | _CLOEXEC)
        try:
            # Created read-only (blobs never change) while we hold a writable descriptor: no chmod.
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o444)
            try:
                # Unchanged since it was hashed (same inode, size and times before and after the
                # copy): a kernel-side copy, no second hash. Otherwise hash while copying.
                fast = expected_stat is not None and stat_key(os.fstat(src)) == expected_stat
                if fast:
                    fast = copy_fd(src, out) and stat_key(os.fstat(src)) == expected_stat
                if not fast:
                    copy_verified(src, out, digest, path)
                if self.fsync:
                    os.fsync(out)
            finally:
                os.close(out)
            try:
                os.replace(tmp, final)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(final), exist_ok=True)
                os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        finally:
            os.close(src)

    def open(self, digest: str) -> Iterator[bytes]:
        path = self.path(digest)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError:
            raise FileNotFoundError(f"blob {digest} is missing from {self.url}") from None
        return _read_chunks(fh)

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(digest).unlink()

    def digests(self) -> Iterator[tuple[str, float]]:
        for shard in sorted(os.listdir(self.root)):
            if len(shard) != 2 or not (self.root / shard).is_dir():
                continue
            for rest in sorted(os.listdir(self.root / shard)):
                if _is_digest(shard + rest):
                    try:
                        yield shard + rest, (self.root / shard / rest).stat().st_mtime
                    except FileNotFoundError:
                        continue


def _read_chunks(fh: object) -> Iterator[bytes]:
    with fh:  # type: ignore[attr-defined]
        while chunk := fh.read(CHUNK):  # type: ignore[attr-defined]
            yield chunk


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_opened: dict[str, BlobStore] = {}


def open_blob_store(url: str) -> BlobStore:
    """The blob store at `url`: `file:///path`, a plain path, or `s3://bucket/prefix`."""
    found = _opened.get(url)
    if found is not None:
        return found
    parsed = urlparse(url)
    store: BlobStore
    if parsed.scheme == "s3":
        from branchline.artifacts.s3 import S3BlobStore

        store = S3BlobStore(url)
    elif parsed.scheme == "file":
        store = LocalBlobStore(unquote(parsed.path))
    elif parsed.scheme == "" and url:
        store = LocalBlobStore(url)
    else:
        raise UsageError(f"Unsupported artifact storage {url!r}: use file:///path or s3://bucket/prefix.")
    _opened[url] = store
    return store


def resolve_blob_url(store_url: str, explicit: str | None = None) -> str:
    """Where blobs go: `explicit`, else $BRANCHLINE_ARTIFACT_STORAGE, else `blobs/` beside a SQLite store."""
    chosen = explicit or os.environ.get(STORAGE_ENV)
    if chosen:
        return chosen
    if store_url.startswith("sqlite:///") and not store_url.endswith(":memory:"):
        database = Path(store_url[len("sqlite:///") :].split("?", 1)[0])
        return (database.resolve().parent / "blobs").as_uri()
    raise UsageError(
        f"The store {store_url} keeps no files itself: set {STORAGE_ENV} to file:///path or "
        "s3://bucket/prefix to say where artifact blobs go."
    )
