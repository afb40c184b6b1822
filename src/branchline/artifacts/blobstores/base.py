"""What every blob store is, and the copy and check helpers they share.

A blob is named by the sha256 of its bytes and never changes, so versions and projects share it
and a re-upload of something present is skipped. Every write is atomic: readers see the whole blob
or nothing (temp file + rename on disk; one PUT or a completed multipart upload on S3).
"""

from __future__ import annotations

import errno
import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator
from pathlib import Path

from branchline.artifacts.errors import changed_after_add
from branchline.artifacts.hashing import CHUNK, FileStat, thread_buffer

__all__ = ["BlobStore", "copy_fd", "copy_verified", "verified_chunks"]


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
