"""Run files: `run.save()` mirrors files into `run.dir` and stores their content with the run.

Content is stored in the run's file storage, `<branchline_dir>/files/<incarnation_id>/<path>`
(a local directory), written to a temporary name and renamed so a reader never sees half a file;
then a FILE record (path, size, sha256) goes into the journal. With a server, a background thread
also uploads that content (stored there by sha256), retrying without ever blocking training.
A path whose content is unchanged is not stored again.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from branchline.sdk.context import ShutdownPhase
from branchline.vocab import RecordKind

if TYPE_CHECKING:
    from branchline.sdk.context import RunContext
    from branchline.settings import Settings

__all__ = [
    "LIVE_POLL_SECONDS",
    "POLICIES",
    "RunFiles",
    "files_root",
    "run_file_path",
    "run_files",
    "save_files",
]

POLICIES = ("live", "now", "end")
# How often "live" files are checked for changes (a stat per file; hashing only when it moved).
LIVE_POLL_SECONDS = 2.0
#: How long `finish` waits for run files still uploading to a server.
UPLOAD_DRAIN_SECONDS = 120.0
# File timestamps tick coarsely (a kernel jiffy, or seconds on some filesystems): a file whose
# mtime is this close to when we last read it may have changed without its stat changing.
_RACY_NS = 2_000_000_000
_CHUNK = 1 << 20
_REMOTE_PREFIXES = ("s3://", "gs://", "gcs://", "az://", "abfs://")
_MAGIC = re.compile(r"[*?\[]")
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


def files_root(settings: Settings) -> Path:
    """The directory holding every run's stored files."""
    return settings.branchline_dir / "files"


def clean_relpath(path: str) -> str:
    """The POSIX relative path a run file is stored under; refuses absolute paths and `..`."""
    text = str(path).replace(os.sep, "/")
    pure = PurePosixPath(text)
    parts = [p for p in pure.parts if p not in ("", ".")]
    if pure.is_absolute() or not parts or ".." in parts:
        raise ValueError(f"{path!r} is not a relative path inside the run's files.")
    return "/".join(parts)


def run_file_path(settings: Settings, incarnation_id: str, path: str) -> Path:
    """Where the stored content of run file `path` of an incarnation lives on disk."""
    if not _SAFE_ID.match(incarnation_id) or incarnation_id in (".", ".."):
        raise ValueError(f"{incarnation_id!r} is not an incarnation id.")
    return files_root(settings) / incarnation_id / clean_relpath(path)


@dataclass
class _Watched:
    source: Path
    rel: str
    # (mtime_ns, size) at the last check: an unchanged stat means no need to read the file...
    stat_key: tuple[int, int] | None = None
    # ...unless the mtime is within _RACY_NS of when that check happened (wall clock, ns).
    checked_ns: int = 0
    # Set when run.dir holds a copy (no symlinks or hard links): refreshed on each re-store.
    mirror_copy: Path | None = None


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class RunFiles:
    """One run's stored files, and the watcher that re-stores "live" files when they change.

    A telemetry part: `finish` calls `stop()`, which checks live files a last time and stores
    the "end" ones. Never raises into training code from the background; `store` (called from
    `save` in the training thread for "now"/"live") may raise OSError, which `save` reports.
    """

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self._journal = ctx.journal
        self._root = files_root(ctx.settings) / ctx.incarnation_id
        # Serialises stores: the training thread ("now") and the watcher may touch one path.
        self._lock = threading.Lock()
        self._stored: dict[str, str] = {}  # rel -> sha256 of what storage holds
        self._live: dict[str, _Watched] = {}
        self._end: dict[str, _Watched] = {}
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._stopped = False
        # With a server, stored content is also uploaded; the uploader starts with the first file.
        settings = ctx.settings
        self._remote = ctx.store is None and bool(settings.base_url) and settings.mode == "online"
        self._uploader: _Uploader | None = None

    # ---- storing

    def store(self, source: Path, rel: str) -> bool:
        """Copy `source` into storage as `rel` and record it; False when that content is stored already."""
        rel = clean_relpath(rel)
        with self._lock:
            if self._stopped:
                return False
            previous = self._stored.get(rel)
            if previous is not None and _sha256_of(source) == previous:
                return False
            dest = self._root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
            try:
                digest = hashlib.sha256()
                size = 0
                with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                # No fsync: the rename gives readers all-or-nothing; the source is still there
                # to store again if the machine dies before the page cache is written back.
                os.replace(tmp, dest)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            sha = digest.hexdigest()
            self._stored[rel] = sha
            self._journal.write(RecordKind.FILE, rel, size, sha, time.time())
            if self._remote:
                if self._uploader is None:
                    self._uploader = _Uploader(self._ctx)
                self._uploader.submit(rel, dest, sha)
            return True

    # ---- policies

    def add(self, source: Path, rel: str, policy: str, mirror_copy: Path | None) -> None:
        """Register a file saved with `policy`; "now" and "live" are stored before this returns."""
        watched = _Watched(source, rel, mirror_copy=mirror_copy)
        with self._lock:  # the watcher iterates these from its thread
            # The latest save() of a path decides its policy.
            self._live.pop(rel, None)
            self._end.pop(rel, None)
            if policy == "end":
                self._end[rel] = watched
                return
            if policy == "live":
                self._live[rel] = watched
        if policy == "live":
            self._ensure_watcher()
        if source.exists():
            with contextlib.suppress(OSError):
                st = source.stat()
                watched.stat_key = (st.st_mtime_ns, st.st_size)
                watched.checked_ns = time.time_ns()
            self.store(source, rel)

    def _ensure_watcher(self) -> None:
        if self._thread is None and not self._stopping.is_set():
            self._thread = threading.Thread(target=self._watch, name="branchline-files", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        while not self._stopping.wait(LIVE_POLL_SECONDS):
            self.check_live()

    def check_live(self) -> None:
        """Re-store every live file whose stat moved and whose content changed. Never raises."""
        with self._lock:
            live = list(self._live.values())
        for watched in live:
            try:
                st = watched.source.stat()
            except FileNotFoundError:
                continue  # not written yet, or being replaced; the next check sees it
            except OSError as exc:
                self._warn(f"live-{watched.rel}", f"could not check {watched.source}: {exc}")
                continue
            key = (st.st_mtime_ns, st.st_size)
            if key == watched.stat_key and st.st_mtime_ns < watched.checked_ns - _RACY_NS:
                continue
            # Taken before reading: a write during the copy moves the stat again, so it is seen.
            watched.stat_key = key
            watched.checked_ns = time.time_ns()
            try:
                if self.store(watched.source, watched.rel) and watched.mirror_copy is not None:
                    shutil.copyfile(watched.source, watched.mirror_copy)
            except Exception as exc:  # the watcher must outlive any one file
                self._warn(f"live-{watched.rel}", f"could not store {watched.source}: {exc}")

    def stop(self) -> None:
        """Stop watching, store the last state of live files and the "end" files. Never raises."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self.check_live()
        with self._lock:
            end = list(self._end.values())
        for watched in end:
            try:
                if watched.source.exists():
                    self.store(watched.source, watched.rel)
                else:
                    self._warn(f"end-{watched.rel}", f"{watched.source} was saved with policy 'end' but is missing.")
            except Exception as exc:
                self._warn(f"end-{watched.rel}", f"could not store {watched.source}: {exc}")
        with self._lock:
            self._stopped = True
        if self._uploader is not None:
            self._uploader.close(UPLOAD_DRAIN_SECONDS)

    def _warn(self, key: str, message: str) -> None:
        self._ctx.warn_once(f"files:{key}", message)


class _Uploader:
    """Sends stored run files to the server (remote mode) from a background thread.

    Each upload is retried with backoff; a file that keeps failing is reported once and tried
    again later, until `close`. A file replaced by newer content (a live file) is skipped: its
    newer content is queued too. Never raises into training code.
    """

    def __init__(self, ctx: RunContext) -> None:
        from branchline.artifacts.http import HttpArtifactBackend

        settings = ctx.settings
        assert settings.base_url is not None
        self._ctx = ctx
        start = ctx.start
        self._backend = HttpArtifactBackend(settings.base_url, settings.api_key, start.entity, start.project)
        self._incarnation = ctx.incarnation_id
        self._pending: dict[str, tuple[Path, str]] = {}  # rel -> (local copy, sha256); newest wins
        self._cond = threading.Condition()
        self._busy = False
        self._closing = False
        self._failing = False  # the last attempt failed: the server is unreachable or refusing
        self.failures = 0
        self._stop = threading.Event()  # set by close(): ends a retry loop at once
        self._thread = threading.Thread(target=self._loop, name="branchline-file-upload", daemon=True)
        self._thread.start()

    def submit(self, rel: str, path: Path, sha256: str) -> None:
        with self._cond:
            self._pending[rel] = (path, sha256)
            self._cond.notify_all()

    def _loop(self) -> None:
        delay = 0.5
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                rel, (path, sha) = next(iter(self._pending.items()))
                del self._pending[rel]
                self._busy = True
            ok = self._send(rel, path, sha)
            with self._cond:
                self._busy = False
                self._failing = not ok
                if not ok and not self._closing and rel not in self._pending:
                    self._pending[rel] = (path, sha)  # try again later, behind the others
                self._cond.notify_all()
                if not ok and not self._closing:
                    self._cond.wait(delay)
            delay = 0.5 if ok else min(30.0, delay * 2)

    def _send(self, rel: str, path: Path, sha: str) -> bool:
        from branchline.artifacts.errors import ArtifactIntegrityError
        from branchline.artifacts.http import upload_run_file

        try:
            upload_run_file(
                self._backend, self._incarnation, rel, str(path), sha, stop=self._stop, on_retry=self._retrying
            )
            return True
        except (ArtifactIntegrityError, FileNotFoundError):
            return True  # replaced by newer content, which is queued itself
        except Exception as exc:  # the network, the server: report once, retry later
            self.failures += 1
            self._ctx.warn_once(f"files:upload-{rel}", f"could not upload {rel} to the server (will retry): {exc}")
            return False

    def _server_answers(self) -> bool:
        import httpx

        try:
            return httpx.get(f"{self._ctx.settings.base_url}/api/v1/health", timeout=2.0).status_code < 500
        except httpx.HTTPError:
            return False

    def _retrying(self) -> None:
        with self._cond:
            self._failing = True
            self._cond.notify_all()

    def close(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for queued uploads while they succeed, then stop the thread.

        A server that is failing uploads is not waited for: `finish` stays bounded when it is down.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            failing = self._failing and (self._pending or self._busy)
        # Uploads that failed earlier are waited for only if the server answers now: finish stays
        # bounded while it is down, and does not give up on one that came back.
        if failing and self._server_answers():
            with self._cond:
                self._failing = False
                self._cond.notify_all()  # wakes the loop from its backoff for a fresh attempt
        with self._cond:
            while (self._pending or self._busy) and not self._failing and time.monotonic() < deadline:
                self._cond.wait(min(0.5, max(0.01, deadline - time.monotonic())))
            left = len(self._pending) + (1 if self._busy else 0)
            self._closing = True
            self._stop.set()
            self._pending.clear()
            self._cond.notify_all()
        self._thread.join(timeout=1)
        if left:
            self._ctx.warn_once(
                "files:upload-left",
                f"{left} run file(s) were not uploaded to the server; "
                f"their content stays under {files_root(self._ctx.settings)}.",
            )
        self._backend.close()


def run_files(ctx: RunContext) -> RunFiles:
    """The run's RunFiles, created (and attached to the run) on first use."""
    found = ctx.part(RunFiles)
    if found is not None:
        return found
    files = RunFiles(ctx)
    # It may still write records at finish, and the console capture (stopped later) should see
    # any warning it prints.
    ctx.attach(files, ShutdownPhase.STORE_FILES)
    return files


def _has_magic(text: str) -> bool:
    return _MAGIC.search(text) is not None


def _fixed_prefix(pattern: str) -> str:
    """The deepest directory of an absolute glob that contains no wildcard."""
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts[:-1]:
        if _has_magic(part):
            break
        fixed.append(part)
    return os.path.join(*fixed) if fixed else os.sep


def _mirror(source: Path, target: Path) -> Path | None:
    """Make `target` (in run.dir) show `source`: a symlink, else a hard link, else a copy.

    Returns the target when it is a copy (so a live re-store refreshes it), else None.
    """
    with contextlib.suppress(OSError):
        if target.exists() and os.path.samefile(source, target):
            return None  # the file is in run.dir already, or mirrored before
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    try:
        os.symlink(source, target)
        return None
    except OSError:
        pass
    if not source.exists():
        return None  # nothing to link or copy yet; storage reads the source itself
    try:
        os.link(source, target)
        return None
    except OSError:
        shutil.copyfile(source, target)
        return target


def save_files(ctx: RunContext, glob_str: str, base_path: str | None = None, policy: str = "live") -> list[str]:
    """`run.save()`: expand `glob_str` once, mirror the matches into run.dir, store them per `policy`.

    Returns the mirrored paths. Raises ValueError for an unknown policy or a match outside
    `base_path`; a cloud URL is refused with a message (nothing saved).
    """
    if policy not in POLICIES:
        raise ValueError(f"policy={policy!r} is not valid; use 'live', 'now' or 'end'.")
    if isinstance(glob_str, bytes) or not isinstance(glob_str, str | os.PathLike):
        raise ValueError("save() takes a path or glob as a string.")
    glob_str = os.fspath(glob_str)
    terminal = ctx.terminal
    if glob_str.startswith(_REMOTE_PREFIXES):
        terminal.warn(
            f"save({glob_str!r}): cloud storage paths cannot be saved with the run; "
            "download the file first, or log it as an artifact reference."
        )
        return []
    if ctx.settings.mode == "disabled":
        return []
    pattern = os.path.abspath(glob_str)
    files_dir = ctx.files_dir
    if base_path is not None:
        base = os.path.abspath(os.fspath(base_path))
    elif Path(pattern).is_relative_to(files_dir):
        base = str(files_dir)  # a file written into run.dir keeps its place there
    elif os.path.isabs(glob_str):
        base = _fixed_prefix(pattern)
        ctx.warn_once(
            "files:absolute-glob",
            f"save({glob_str!r}) with an absolute path keeps paths relative to {base}; "
            "pass base_path= to keep more of the directory structure.",
        )
    else:
        base = os.getcwd()
    if _has_magic(glob_str):
        matches = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        if not matches:
            terminal.log(f"save({glob_str!r}) matched no files; nothing was saved.")
    elif os.path.isdir(pattern):
        raise ValueError(f"save({glob_str!r}): that is a directory; pass a glob such as '{glob_str}/*'.")
    elif os.path.exists(pattern) or policy != "now":
        # A literal path may not exist yet: a "live" or "end" file is stored once it does.
        matches = [pattern]
    else:
        terminal.warn(f"save({glob_str!r}, policy='now'): the file does not exist; nothing was saved.")
        matches = []
    planned: list[tuple[Path, str]] = []
    for match in matches:
        rel = os.path.relpath(match, base)
        if rel == os.curdir or rel.split(os.sep)[0] == os.pardir:
            raise ValueError(f"save: {match} is not inside base_path {base}; pass a base_path that contains it.")
        planned.append((Path(match), clean_relpath(rel)))
    files = run_files(ctx)
    mirrored: list[str] = []
    for source, rel in planned:
        target = files_dir / rel
        copy: Path | None = None
        try:
            copy = _mirror(source, target)
        except OSError as exc:
            ctx.warn_once(f"files:mirror-{rel}", f"could not mirror {source} into {files_dir}: {exc}")
        try:
            files.add(source, rel, policy, copy)
        except OSError as exc:
            # Storage trouble (full disk, permissions) must not end the training run.
            ctx.warn_once(f"files:store-{rel}", f"could not store {source}: {exc}")
            continue
        mirrored.append(str(target))
    return mirrored
