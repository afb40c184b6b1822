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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = ["DigestCache", "FileStat", "default_cache_dir", "digest_files", "file_stat", "sha256_file"]

CHUNK = 4 << 20

FileStat = tuple[int, int, int, int, int]  # dev, ino, size, mtime_ns, ctime_ns


def file_stat(path: str | os.PathLike[str]) -> FileStat:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def sha256_file(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


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


def digest_files(
    paths: Sequence[str], *, use_cache: bool = True, workers: int | None = None
) -> list[tuple[str, FileStat]]:
    """(sha256, stat) of each path, hashing cache misses in parallel (hashlib releases the GIL)."""
    stats = [file_stat(p) for p in paths]
    cache = shared_cache() if use_cache else None
    keyed = [(os.path.realpath(p), st) for p, st in zip(paths, stats, strict=True)]
    known = cache.lookup(keyed) if cache is not None else {}
    missing = [i for i, (real, _) in enumerate(keyed) if real not in known]
    digests: dict[int, str] = {}
    if missing:
        count = workers or min(8, (os.cpu_count() or 1) * 2)
        if len(missing) == 1 or count == 1:
            digests = {i: sha256_file(paths[i]) for i in missing}
        else:
            with ThreadPoolExecutor(max_workers=count) as pool:
                digests = dict(zip(missing, pool.map(lambda i: sha256_file(paths[i]), missing), strict=True))
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
