"""Capturing a file's bytes when it is added to an artifact, so later edits cannot change a version.

With `policy="mutable"` (the default, as in wandb) `add_file`/`add_dir` copy each file into a
private staging directory and hash the copy; the upload then reads the copy, so a training loop may
overwrite `model.pt` right after `log_artifact` and every version keeps the bytes it had when it was
added. The copy is `copy_file_range`, which the kernel serves as a reflink (no data copied) on file
systems that have them (btrfs, XFS) and as an in-kernel copy elsewhere; the copy is then hashed from
the page cache. On ext4 that costs about the same as reading the source once and hashing it while
writing the copy (bench/bench_artifacts.py: the one pass took 0.95x the wall and 0.96x the CPU
time), and on a reflink file system it skips the copy, so it is the one used. A file whose digest
cache entry is still valid is copied without hashing; one whose blob this process already stored
(re-logging an unchanged file) is not copied at all unless `log_artifact` finds the blob missing
from the run's storage.

With `policy="immutable"` nothing is copied: the upload reads the file itself and fails that
version, naming the file, if it changed.

A draft's copies are deleted once its version is committed, or when the draft is dropped. Each
process stages under `<staging root>/<host>.<pid>.<random>`, so the first capture of the next
process deletes what a killed one left behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Protocol

from branchline.artifacts.errors import changed_after_add
from branchline.artifacts.hashing import (
    FileStat,
    default_cache_dir,
    digest_files,
    file_stat,
    hash_fd,
    parallel_map,
    real_paths,
    sha256_file,
    shared_cache,
    stat_key,
    thread_buffer,
)
from branchline.artifacts.manifest import ArtifactManifestEntry
from branchline.processes import pid_alive

__all__ = [
    "POLICIES",
    "STAGING_ENV",
    "Capture",
    "check_policy",
    "check_unchanged",
    "refuse_changed",
    "remember_stored",
    "staging_root",
    "sweep_stale",
]

POLICIES = ("mutable", "immutable")
#: Where captured copies go (default: `staging/` in the digest cache directory). On the data's own
#: btrfs or XFS file system the copies are reflinks and cost almost nothing.
STAGING_ENV = "BRANCHLINE_ARTIFACT_STAGING_DIR"

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_HOST = socket.gethostname().replace(".", "_")
_STALE_AFTER = 86400.0  # another host's staging directory (a shared home) is left alone for a day

# Digests this process has seen stored by an upload, as a hint that re-adding the same content
# needs no copy. Only a hint: `Capture.freeze` asks the run's storage before relying on it.
_stored: set[str] = set()
_STORED_LIMIT = 100_000
_stored_lock = threading.Lock()
_swept = False


class BlobQuery(Protocol):
    """What `freeze` needs from a backend: which blobs it lacks."""

    def missing_blobs(self, digests: Collection[str]) -> set[str]: ...


def check_policy(policy: str) -> None:
    if policy not in POLICIES:
        raise ValueError(
            f"policy={policy!r} is not valid: use 'mutable' (copy the file now; the default) or "
            "'immutable' (no copy; you promise not to change the file until the version is committed)."
        )


def staging_root() -> Path:
    explicit = os.environ.get(STAGING_ENV)
    return Path(explicit) if explicit else default_cache_dir() / "staging"


def remember_stored(digests: Iterable[str]) -> None:
    """Note blobs an upload found or put in storage (a bounded set; cleared when full)."""
    with _stored_lock:
        if len(_stored) > _STORED_LIMIT:
            _stored.clear()
        _stored.update(digests)


def _known_stored(digest: str) -> bool:
    with _stored_lock:
        return digest in _stored


def sweep_stale(root: Path | None = None) -> int:
    """Delete staging directories of dead processes on this host (any host's after a day); returns how many."""
    base = root or staging_root()
    try:
        names = os.listdir(base)
    except OSError:
        return 0
    removed = 0
    now = time.time()
    for name in names:
        parts = name.split(".")
        path = base / name
        try:
            mine = len(parts) == 3 and parts[0] == _HOST
            stale = (mine and int(parts[1]) != os.getpid() and not pid_alive(int(parts[1]))) or (
                not mine and now - path.stat().st_mtime > _STALE_AFTER
            )
        except (OSError, ValueError):
            continue
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def _copy_range(src: int, out: int) -> None:
    """Copy all of `src` into `out` (both at offset 0) inside the kernel, a reflink where the file
    system can; falls back to a plain read/write loop."""
    size = os.fstat(src).st_size
    done = 0
    if hasattr(os, "copy_file_range"):
        try:
            while done < size and (n := os.copy_file_range(src, out, size - done, done, done)):
                done += n
        except OSError as exc:
            if done or exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
                raise
    # Whatever copy_file_range did not copy: everything where it is unsupported, else what the
    # file grew by since fstat (usually nothing: one empty read).
    _copy_plain(src, out, done)


def _copy_plain(src: int, out: int, offset: int = 0) -> None:
    buf = thread_buffer()
    view = memoryview(buf)
    os.lseek(src, offset, os.SEEK_SET)
    os.lseek(out, offset, os.SEEK_SET)
    while n := os.readv(src, [buf]):
        written = 0
        while written < n:
            written += os.write(out, view[written:n])


def _capture_one(source: str, target: str, known: str | None, known_stat: FileStat | None) -> tuple[str, FileStat]:
    """Copy `source` to `target`; (sha256 of the copy, stat of the copy).

    The copy is hashed unless `known` is the digest of `source` at `known_stat` and the source kept
    that stat from before the copy to after it (then the copy has those bytes).
    """
    src = os.open(source, os.O_RDONLY | _CLOEXEC)
    try:
        before = stat_key(os.fstat(src))
        out = os.open(target, os.O_RDWR | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o600)
        try:
            _copy_range(src, out)
            if known is not None and before == known_stat == stat_key(os.fstat(src)):
                digest = known
            else:
                os.lseek(out, 0, os.SEEK_SET)
                digest = hash_fd(out)
            return digest, stat_key(os.fstat(out))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(target)
            raise
        finally:
            os.close(out)
    finally:
        os.close(src)


_STAGING_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def _staging_error(exc: OSError, what: str) -> OSError:
    """The same OSError, saying what failed and the two ways out."""
    return type(exc)(
        exc.errno,
        f"Cannot {what} ({exc.strerror}). Files added with policy='mutable' (the default) are copied "
        f"there; set {STAGING_ENV} to a writable directory with room, or add files you will not "
        "change with policy='immutable' (no copy).",
    )


class Capture:
    """The staged copies of one draft artifact; `cleanup()` deletes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dir: str | None = None
        self._count = 0
        # Source paths added as mutable but not copied, because this process already stored
        # their content: `freeze` copies them after all if the run's storage lacks the blob.
        self._deferred: set[str] = set()

    def _folder(self) -> str:
        global _swept
        with self._lock:
            if self._dir is None:
                root = staging_root()
                if not _swept:
                    _swept = True
                    sweep_stale(root)
                folder = root / f"{_HOST}.{os.getpid()}.{secrets.token_hex(4)}"
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise _staging_error(exc, f"create the artifact staging directory {folder}") from exc
                self._dir = str(folder)
            return self._dir

    def _target(self, source: str) -> str:
        with self._lock:
            self._count += 1
            count = self._count
        return os.path.join(self._folder(), f"{count:07d}-{os.path.basename(source)[:80]}")

    def is_staged(self, path: str | None) -> bool:
        return path is not None and self._dir is not None and path.startswith(self._dir + os.sep)

    def add(self, paths: Sequence[str], *, policy: str, use_cache: bool = True) -> list[tuple[str, str, FileStat]]:
        """(sha256, path to upload from, its stat) for each file: a staged copy, or with
        `policy="immutable"` (or content this process already stored) the file itself."""
        check_policy(policy)
        if policy == "immutable":
            return [(d, p, st) for p, (d, st) in zip(paths, digest_files(paths, use_cache=use_cache), strict=True)]
        stats = [file_stat(p) for p in paths]
        cache = shared_cache() if use_cache else None
        keyed = list(zip(real_paths(paths), stats, strict=True))
        known = cache.lookup(keyed) if cache is not None else {}

        def one(i: int) -> tuple[str, str, FileStat]:
            digest = known.get(keyed[i][0])
            if digest is not None and _known_stored(digest):
                with self._lock:
                    self._deferred.add(paths[i])
                return digest, paths[i], stats[i]
            target = self._target(paths[i])
            try:
                found, staged = _capture_one(paths[i], target, digest, stats[i])
            except OSError as exc:
                if exc.errno not in _STAGING_ERRNOS or exc.filename == paths[i]:
                    raise  # about the file itself (gone, unreadable): the usual error
                raise _staging_error(exc, f"copy {paths[i]} to {target}") from exc
            return found, target, staged

        count = min(8, (os.cpu_count() or 1) * 2)
        out = parallel_map(one, list(range(len(paths))), count)
        if cache is not None:
            # Cache what was hashed, under the stat the source had before the copy, and only if
            # it still has it (a file written meanwhile must not be cached).
            fresh = []
            for i, (digest, _, _) in enumerate(out):
                if keyed[i][0] not in known:
                    with contextlib.suppress(OSError):
                        if file_stat(paths[i]) == stats[i]:
                            fresh.append((keyed[i][0], stats[i], digest))
            cache.store(fresh)
        return out

    def release(self, path: str | None) -> None:
        """Delete one staged copy (its entry was replaced)."""
        if self.is_staged(path):
            assert path is not None
            with contextlib.suppress(OSError):
                os.unlink(path)

    def freeze(self, entries: Sequence[ArtifactManifestEntry], backend: BlobQuery) -> None:
        """At `log_artifact`: refuse an immutable file that changed since it was added, and copy the
        deferred ones whose blob the run's storage lacks. Raises naming the file."""
        deferred = [e for e in entries if e.ref is None and e.local_path in self._deferred]
        skip = {id(e) for e in deferred}
        check_unchanged([e for e in entries if not self.is_staged(e.local_path) and id(e) not in skip])
        if not deferred:
            return
        absent = backend.missing_blobs({e.digest for e in deferred})
        for entry in deferred:
            if entry.digest not in absent:
                continue
            assert entry.local_path is not None
            target = self._target(entry.local_path)
            digest, staged = _capture_one(entry.local_path, target, entry.digest, entry.local_stat)
            if digest != entry.digest:
                self.release(target)
                raise changed_after_add(entry.local_path, entry.digest, digest)
            entry.local_path, entry.local_stat = target, staged

    def cleanup(self) -> None:
        """Delete every staged copy (the version is committed, or the draft is gone)."""
        with self._lock:
            folder, self._dir = self._dir, None
            self._deferred.clear()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def check_unchanged(entries: Sequence[ArtifactManifestEntry]) -> None:
    """`refuse_changed` for each entry (at `log_artifact`, so the common mistake is reported at the call)."""
    for entry in entries:
        refuse_changed(entry)


def refuse_changed(entry: ArtifactManifestEntry) -> None:
    """Raise, naming the file, if a file read in place has other bytes than when it was added.

    Only a file whose stat changed is read again. The upload checks once more while it reads,
    since the file can still change after this.
    """
    if entry.ref is not None or entry.local_path is None or entry.local_stat is None:
        return
    try:
        if file_stat(entry.local_path) == entry.local_stat:
            return
        actual: str | None = sha256_file(entry.local_path)
    except FileNotFoundError:
        actual = None
    if actual != entry.digest:
        raise changed_after_add(entry.local_path, entry.digest, actual)
