"""Process-wide run bookkeeping: the active runs, exit hooks, the writer process, finishing."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from branchline import inflight
from branchline.sdk.journal import HOLD_WAIT, JournalWriter
from branchline.sdk.terminal import Terminal
from branchline.vocab import RecordKind, RunState

if TYPE_CHECKING:
    from branchline.sdk.run import Run
    from branchline.store import Store

__all__ = [
    "WRITER_KEY_ENV",
    "RunResources",
    "WriterProcess",
    "finish_run",
    "install_hooks",
    "registry",
    "wait_until_stored",
]

#: How the writer process receives a server's API key (its argv is visible to every user).
WRITER_KEY_ENV = "BRANCHLINE_WRITER_API_KEY"
#: finish() waits this long for a server by default; the embedded store is waited for to the end.
REMOTE_FINISH_TIMEOUT = 60.0


class WriterProcess:
    """The child process that applies this run's journal to the sink.

    It is started at the very beginning of `init()`, before the run exists, so that its imports
    (SQLAlchemy, numpy) overlap with the parent's own start-up instead of competing with the first
    seconds of training; `start()` then hands it the run. `abandon()` lets it go when `init()` fails.
    """

    def __init__(
        self,
        target: dict[str, Any],
        terminal: Terminal,
        on_stop: Any,
        env: dict[str, str] | None = None,
    ) -> None:
        self.terminal = terminal
        self.on_stop = on_stop
        self.done = threading.Event()
        #: Set once the run is in the store, when the writer creates it (a fast start), or once
        #: the writer is gone.
        self.begun = threading.Event()
        self.result: dict[str, Any] = {}
        self.fatal = False
        prewarm = "server" if "base_url" in target else "store"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "branchline.sdk.writer", "--prewarm", prewarm],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # The writer points its stderr at the run's writer.log once it knows the run.
            stderr=subprocess.DEVNULL,
            # Its own session: a Ctrl-C or a kill of the training process group leaves the writer
            # alive to store what the journal holds.
            start_new_session=True,
            close_fds=True,
            env={**os.environ, **env} if env else None,
        )
        self.reader = threading.Thread(target=self._listen, name="branchline-writer-listener", daemon=True)
        self.reader.start()

    def start(self, args: dict[str, Any], log_path: Path) -> None:
        """Hand the waiting writer its run: the journal to tail and where to store it."""
        self._send({**args, "log": str(log_path)})

    def abandon(self) -> None:
        """`init()` failed: the waiting writer exits when its stdin closes."""
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # type: ignore[union-attr]
        threading.Thread(target=self._reap, name="branchline-writer-reaper", daemon=True).start()

    def _send(self, message: dict[str, Any]) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(message).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the writer is gone; finish() stores the journal itself

    def _listen(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            event = message.get("event")
            if event == "error":
                registry.writer_errors += 1
                self.terminal.warn(f"the writer reported: {message.get('message')}")
            elif event == "stop":
                self.on_stop()
            elif event == "fatal":
                self.fatal = True
            elif event == "begun":
                self.begun.set()
            elif event == "done":
                self.result = message
                self.done.set()
        self.begun.set()
        self.done.set()

    def finish(self, final_seq: int, timeout: float, footer_keys: int = 0) -> dict[str, Any]:
        """Wait until the writer has applied `final_seq`; it answers with up to `footer_keys` sparklines."""
        self._send({"cmd": "finish", "final_seq": final_seq, "timeout": timeout, "footer_keys": footer_keys})
        self.done.wait(None if timeout <= 0 else timeout + 5)
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # type: ignore[union-attr]
        if self.result:
            # Everything is committed; the writer only has its store to close. Reap it in the
            # background instead of making finish() wait for the process to exit.
            threading.Thread(target=self._reap, name="branchline-writer-reaper", daemon=True).start()
        else:
            self._reap()
        return self.result

    def _reap(self) -> None:
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@dataclass
class RunResources:
    """What a live run owns besides its Python state."""

    journal: JournalWriter
    run_dir: Path
    files_dir: Path
    terminal: Terminal
    store: Store | None = None
    #: Set when init() left creating the run to the writer (sdk/fast_start.py): opens the store on demand.
    store_opener: Callable[[], Store] | None = None
    writer: WriterProcess | None = None
    url: str | None = None
    lock_fd: int = -1
    resume_file: Path | None = None
    warned: set[str] = field(default_factory=set)
    telemetry: list[Any] = field(default_factory=list)  # things with stop()
    _store_lock: threading.Lock = field(default_factory=threading.Lock)

    def embedded_store(self) -> Store | None:
        """The run's embedded store, opened on first use after a fast start; None without one."""
        if self.store is None and self.store_opener is not None:
            with self._store_lock:
                if self.store is None:
                    self.store = self.store_opener()
        return self.store


class _Registry:
    """The runs alive in this process, and what the exit hooks captured."""

    def __init__(self) -> None:
        self.runs: list[Run] = []
        self.exit_code: int | None = None
        self.writer_errors = 0  # reported by writer processes; tests assert it stays 0
        self.hooks_installed = False
        self.lock = threading.RLock()


registry = _Registry()


def install_hooks() -> None:
    """Capture the exit code (sys.exit, uncaught exceptions) and finish runs at interpreter exit."""
    if registry.hooks_installed:
        return
    registry.hooks_installed = True
    original_exit = sys.exit
    original_hook = sys.excepthook

    def exit_hook(code: Any = None) -> Any:
        if code is None:
            registry.exit_code = 0
        elif isinstance(code, int):
            registry.exit_code = code
        else:
            registry.exit_code = 1
        original_exit(code)

    def except_hook(exc_type: Any, exc: Any, tb: Any) -> None:
        registry.exit_code = 255 if issubclass(exc_type, KeyboardInterrupt) else 1
        original_hook(exc_type, exc, tb)
        _finish_all()

    sys.exit = exit_hook
    sys.excepthook = except_hook
    atexit.register(_finish_all)


def _finish_all() -> None:
    for run in list(registry.runs):
        try:
            run.finish(exit_code=registry.exit_code)
        except Exception as exc:  # never turn interpreter exit into a traceback storm
            print(f"branchline: WARNING could not finish run {run.id}: {exc}", file=sys.stderr)


def finish_run(run: Run, exit_code: int, state: RunState) -> None:
    res = run._res
    for part in res.telemetry:
        try:
            part.stop()
        except Exception as exc:
            res.terminal.warn(f"stopping {type(part).__name__} failed: {exc}")
    run._flush()
    res.journal.write(RecordKind.EXIT, exit_code, state.value, run._runtime())
    settings = run._settings
    # Records a full disk refused are retried for a bounded time; the journal says what was lost.
    res.journal.close(hold_wait=settings.finish_timeout or HOLD_WAIT)
    final_seq = res.journal.seq  # the last record the kernel has
    pending = 0
    if res.writer is not None:
        timeout = settings.finish_timeout
        if timeout is None:
            timeout = REMOTE_FINISH_TIMEOUT if settings.base_url else 0.0
        footer_keys = 0 if res.terminal.quiet else settings.max_end_of_run_history_metrics
        result = res.writer.finish(final_seq, timeout, footer_keys)
        applied = int(result.get("applied", 0))
        if applied < final_seq and not settings.base_url:
            # The writer could not finish (it died or timed out): apply here, idempotently.
            from branchline.sdk.sink import LocalSink
            from branchline.sdk.sync import describe_failure, sync_journal

            try:
                sink = LocalSink(settings.resolved_store_url, settings.x_crash_timeout)
                try:
                    synced = sync_journal(res.journal.path, sink, delete=False)
                finally:
                    sink.close()
                applied = max(applied, synced.last_seq)  # what is stored, never what was hoped for
                if synced.warning:
                    res.terminal.warn(synced.warning)
            except Exception as exc:
                res.terminal.warn(f"could not store the run's last records: {describe_failure(exc)}")
        pending = max(0, final_seq - applied)
    _release_lock(res)
    if res.writer is not None and pending == 0:
        res.journal.path.unlink(missing_ok=True)
    lines = []
    if settings.mode == "offline":
        lines.append(f"Run {run.id} was logged offline. Store it with: branchline sync {res.run_dir}")
    elif pending:
        lines.append(f"{pending} records are not stored yet; `branchline sync {res.run_dir}` will store them.")
        if res.terminal.quiet:  # the footer is not shown, but this must be
            res.terminal.warn(lines[-1])
    elif settings.mode == "online" and res.url:
        lines.append(f"View run {run.name} at {res.url}")
    elif settings.mode == "online":
        lines.append(f"View run {run.name} ({run.path}): branchline ui --dir {settings.branchline_dir.parent}")
    lines.append(f"Run files: {res.files_dir}")
    if settings.mode != "disabled":
        _print_footer(run, lines)
    if res.resume_file is not None and exit_code == 0:
        res.resume_file.unlink(missing_ok=True)
    if res.store is not None:
        res.store.close()
    with registry.lock:
        if run in registry.runs:
            registry.runs.remove(run)
    from branchline.sdk import globals as run_globals

    run_globals.on_finish(run)


def _print_footer(run: Run, lines: list[str]) -> None:
    res = run._res
    if res.terminal.quiet:
        return
    # The writer read the sparklines' points from the store (the training process never imports it).
    found = res.writer.result.get("history") if res.writer is not None else None
    history: dict[str, Sequence[float]] = found if isinstance(found, dict) else {}
    summary = dict(run._state.summary)
    from branchline.summaries import flatten

    flat = {".".join(path): value for path, value in flatten(summary)}
    res.terminal.footer(history, flat, lines)


def wait_until_stored(timeout: float = 30.0) -> bool:
    """Wait for the runs of this process that their writers are still creating (fast starts).

    Reading right after `init()` (`Api().run(run.path)`, or `Api()` on a store the first run is
    creating) would otherwise not find them yet. Returns whether there was any to wait for.
    """
    with registry.lock:
        pending = [
            r._res.writer
            for r in registry.runs
            if r._res.writer is not None and r._res.store is None and r._res.store_opener is not None
        ]
    deadline = time.monotonic() + timeout
    for writer in pending:
        writer.begun.wait(max(0.0, deadline - time.monotonic()))
    return bool(pending)


# Readers in this process (the public Api) wait through the neutral module, never importing the SDK.
inflight.register(wait_until_stored)


def _release_lock(res: RunResources) -> None:
    if res.lock_fd >= 0:
        with contextlib.suppress(OSError):
            os.close(res.lock_fd)
        res.lock_fd = -1


def now() -> float:
    return time.time()
