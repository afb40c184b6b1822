"""sha256 of files, in parallel, with a cache keyed on each file's identity and change times.

The cache is what makes re-logging an unchanged 1 GB directory take well under a second: a file
whose (device, inode, size, mtime, ctime) are unchanged is not read again. ctime cannot be set back
by a user, so an edited file always misses the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

__all__ = [
    "DigestCache",
    "FileStat",
    "default_cache_dir",
    "digest_files",
    "file_stat",
    "hash_fd",
    "parallel_map",
    "sha256_file",
    "stat_key",
]

CHUNK = 4 << 20
#: Read size when hashing. Each thread reuses one buffer: a fresh buffer per file costs a page
#: fault per 4 KiB on first touch, which measured as much as the hashing on virtual machines.
BUFFER = 1 << 20

FileStat = tuple[int, int, int, int, int]  # dev, ino, size, mtime_ns, ctime_ns

T = TypeVar("T")
R = TypeVar("R")

_local = threading.local()


def stat_key(st: os.stat_result) -> FileStat:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def file_stat(path: str | os.PathLike[str]) -> FileStat:
    return stat_key(os.stat(path))


def thread_buffer() -> bytearray:
    """This thread's reusable read buffer."""
    buf: bytearray | None = getattr(_local, "buffer", None)
    if buf is None:
        buf = _local.buffer = bytearray(BUFFER)
    return buf


def hash_fd(fd: int) -> str:
    """sha256 of the bytes from `fd`'s position to its end (hashlib releases the GIL for each block)."""
    buf = thread_buffer()
    view = memoryview(buf)
    h = hashlib.sha256()
    while n := os.readv(fd, [buf]):
        h.update(view[:n])
    return h.hexdigest()


def advise_sequential(fd: int) -> None:
    """Ask for aggressive read-ahead: a cold file is read at disk speed, not in small steps."""
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)


def sha256_file(path: str | os.PathLike[str]) -> str:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        advise_sequential(fd)
        return hash_fd(fd)
    finally:
        os.close(fd)


def parallel_map(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """`[fn(i) for i in items]` on up to `workers` threads; the first error stops the rest and is raised.

    Plain threads rather than a ThreadPoolExecutor: an executor refuses new work once the
    interpreter starts shutting down, and artifacts may still be committing in the background then.
    """
    count = min(workers, len(items))
    if count <= 1:
        return [fn(i) for i in items]
    results: list[R | None] = [None] * len(items)
    errors: list[BaseException] = []
    lock = threading.Lock()
    indices = iter(range(len(items)))

    def work() -> None:
        while True:
            with lock:
                index = None if errors else next(indices, None)
            if index is None:
                return
            try:
                results[index] = fn(items[index])
            except BaseException as exc:  # re-raised in the calling thread
                with lock:
                    errors.append(exc)
                return

    threads = [threading.Thread(target=work, name=f"branchline-artifacts-{n}", daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value]  # every slot was filled


def default_cache_dir() -> Path:
    explicit = os.environ.get("BRANCHLINE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "branchline"


class DigestCache:
    """A small SQLite table of path → (stat, sha256). Failures only cost a re-hash."""

    def __init__(self, path: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        target = path or default_cache_dir() / "digests.sqlite"
        self.path = target
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(target, timeout=5, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, dev INTEGER, ino INTEGER, "
                "size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER, sha256 TEXT)"
            )
            self._conn = conn
        except (OSError, sqlite3.Error):
            self._conn = None

    def lookup(self, items: Sequence[tuple[str, FileStat]]) -> dict[str, str]:
        """{path: sha256} for the items whose stat still matches the cached one."""
        if self._conn is None or not items:
            return {}
        wanted = dict(items)
        found: dict[str, str] = {}
        paths = list(wanted)
        with self._lock:
            try:
                for offset in range(0, len(paths), 500):
                    chunk = paths[offset : offset + 500]
                    marks = ",".join("?" * len(chunk))
                    for row in self._conn.execute(
                        f"SELECT path, dev, ino, size, mtime_ns, ctime_ns, sha256 FROM digests WHERE path IN ({marks})",
                        chunk,
                    ):
                        if tuple(row[1:6]) == wanted[row[0]]:
                            found[row[0]] = row[6]
            except sqlite3.Error:
                return {}
        return found

    def store(self, items: Sequence[tuple[str, FileStat, str]]) -> None:
        if self._conn is None or not items:
            return
        with self._lock:
            try:
                self._conn.execute("BEGIN")
                self._conn.executemany(
                    "INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(p, *st, d) for p, st, d in items],
                )
                self._conn.execute("COMMIT")
            except sqlite3.Error:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


_shared: DigestCache | None = None
_shared_lock = threading.Lock()


def shared_cache() -> DigestCache:
    """One cache per process (re-opened if BRANCHLINE_CACHE_DIR changes, as tests do)."""
    global _shared
    with _shared_lock:
        target = default_cache_dir() / "digests.sqlite"
        if _shared is None or _shared.path != target:
            if _shared is not None:
                _shared.close()
            _shared = DigestCache(target)
        return _shared


def real_paths(paths: Sequence[str]) -> list[str]:
    """`os.path.realpath` of each path, resolving each directory once (1,000 files in one
    directory cost 1,000 lstat calls instead of one per path component each)."""
    resolved: dict[str, str] = {}
    out = []
    for path in paths:
        if os.path.islink(path):
            out.append(os.path.realpath(path))
            continue
        folder, name = os.path.split(os.path.abspath(path))
        real = resolved.get(folder)
        if real is None:
            real = resolved[folder] = os.path.realpath(folder)
        out.append(os.path.join(real, name))
    return out


def digest_files(
    paths: Sequence[str], *, use_cache: bool = True, workers: int | None = None
) -> list[tuple[str, FileStat]]:
    """(sha256, stat) of each path, hashing cache misses in parallel (hashlib releases the GIL)."""
    stats = [file_stat(p) for p in paths]
    cache = shared_cache() if use_cache else None
    keyed = list(zip(real_paths(paths), stats, strict=True))
    known = cache.lookup(keyed) if cache is not None else {}
    missing = [i for i, (real, _) in enumerate(keyed) if real not in known]
    digests: dict[int, str] = {}
    if missing:
        count = workers or min(8, (os.cpu_count() or 1) * 2)
        found = parallel_map(lambda i: sha256_file(paths[i]), missing, count)
        digests = dict(zip(missing, found, strict=True))
        if cache is not None:
            # Stat again after reading: a file written while we hashed must not be cached.
            fresh = []
            for i in missing:
                try:
                    if file_stat(paths[i]) == stats[i]:
                        fresh.append((keyed[i][0], stats[i], digests[i]))
                except OSError:
                    pass
            cache.store(fresh)
    return [(known[real] if real in known else digests[i], st) for i, (real, st) in enumerate(keyed)]
