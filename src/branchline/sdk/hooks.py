"""Process-wide run bookkeeping: the runs alive in this process and the interpreter-exit hooks."""

from __future__ import annotations

import atexit
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from branchline import inflight

if TYPE_CHECKING:
    from branchline.sdk.context import RunContext
    from branchline.sdk.run import Run

__all__ = ["install_hooks", "registry", "wait_until_stored"]


class _Registry:
    """The runs alive in this process, and what the exit hooks captured."""

    def __init__(self) -> None:
        self.runs: list[Run] = []
        self.contexts: dict[int, RunContext] = {}  # id(run) -> its context, while the run is alive
        self.exit_code: int | None = None
        self.writer_errors = 0  # reported by writer processes; tests assert it stays 0
        self.hooks_installed = False
        self.lock = threading.RLock()

    def add(self, run: Run, context: RunContext) -> None:
        with self.lock:
            self.runs.append(run)
            self.contexts[id(run)] = context

    def remove(self, run: Run) -> None:
        with self.lock:
            if run in self.runs:
                self.runs.remove(run)
            self.contexts.pop(id(run), None)

    def count_writer_error(self) -> None:
        self.writer_errors += 1


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


def wait_until_stored(timeout: float = 30.0) -> bool:
    """Wait for the runs of this process that their writers are still creating (fast starts).

    Reading right after `init()` (`Api().run(run.path)`, or `Api()` on a store the first run is
    creating) would otherwise not find them yet. Returns whether there was any to wait for.
    """
    with registry.lock:
        pending = [
            ctx.writer
            for ctx in registry.contexts.values()
            if ctx.writer is not None and ctx.store is None and ctx.store_opener is not None
        ]
    deadline = time.monotonic() + timeout
    for writer in pending:
        writer.begun.wait(max(0.0, deadline - time.monotonic()))
    return bool(pending)


# Readers in this process (the public Api) wait through the neutral module, never importing the SDK.
inflight.register(wait_until_stored)
