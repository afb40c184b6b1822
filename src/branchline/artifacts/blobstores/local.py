"""Blobs as read-only files in a local directory (`file://` URLs and plain paths)."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time
from collections.abc import Collection, Iterator
from pathlib import Path

from branchline.artifacts.blobstores.base import BlobStore, copy_fd, copy_verified
from branchline.artifacts.hashing import CHUNK, FileStat, stat_key
from branchline.processes import pid_alive

__all__ = ["FSYNC_ENV", "LocalBlobStore"]

#: Set to 1 to fsync every local blob before it is renamed into place.
FSYNC_ENV = "BRANCHLINE_ARTIFACT_FSYNC"

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


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
                stale = len(parts) >= 4 and parts[1] == self._host and not pid_alive(int(parts[2]))
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
