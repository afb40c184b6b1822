"""The live run's context: what the parts of a run (files, alerts, telemetry, artifacts) receive.

`Run` is the user's object; its parts never reach into it. They get a `RunContext` instead: the
journal, the settings, the run's directories, the terminal, warn-once, the runtime clock, the
store (opened on demand after a fast start), the writer process, and the attached parts, each
registered for a named `ShutdownPhase` so that `finish()` stops them in a declared order.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from branchline.errors import UsageError

if TYPE_CHECKING:
    from branchline.runspec import RunStart
    from branchline.sdk.journal import JournalWriter
    from branchline.sdk.terminal import Terminal
    from branchline.sdk.writer_process import WriterProcess
    from branchline.settings import Settings
    from branchline.store import Store

__all__ = ["Part", "RunContext", "ShutdownPhase"]

_P = TypeVar("_P")


class ShutdownPhase(enum.IntEnum):
    """When `finish()` stops an attached part; phases run in this order, parts in attach order.

    After the last one the run writes its final records (the pending row, the exit record), closes
    the journal, waits for the writer to store it, then releases the run's lock and store.
    """

    #: Artifact commits in flight: they may still need the store or the server.
    DRAIN_UPLOADS = 1
    #: Queued alerts; a delivery failure is a warning the console capture should still see.
    DELIVER_ALERTS = 2
    #: Producers of records and files: metadata, requirements, system metrics.
    STOP_PRODUCERS = 3
    #: The run's files: live files checked a last time, "end" files stored, uploads drained.
    STORE_FILES = 4
    #: Console and logger capture, last of the writers so they capture what the others printed.
    FLUSH_CONSOLE = 5
    #: Clients nothing will use any more (the artifact HTTP backend).
    CLOSE_CLIENTS = 6


class Part(Protocol):
    """Something attached to a run that `finish()` stops."""

    def stop(self) -> None: ...


@dataclass
class RunContext:
    """What a live run owns besides its Python state, shared with the run's parts."""

    journal: JournalWriter
    settings: Settings
    start: RunStart
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
    #: Wall-clock start of this incarnation; the runtime clock counts from it (plus what a resumed run had).
    t0: float = field(default_factory=time.time)
    #: Set from the writer's listener when the run is stopped from the UI or API.
    killed: bool = False
    finished: bool = False
    warned: set[str] = field(default_factory=set)
    _parts: list[tuple[ShutdownPhase, Part]] = field(default_factory=list)
    _store_lock: threading.Lock = field(default_factory=threading.Lock)

    # -- identity and clock ----------------------------------------------------------------------
    @property
    def incarnation_id(self) -> str:
        return self.start.incarnation_id

    @property
    def runtime_offset(self) -> float:
        return self.start.runtime_offset

    def runtime(self) -> float:
        """Seconds this run has been running, across resumes."""
        return time.time() - self.t0 + self.start.runtime_offset

    # -- reporting -------------------------------------------------------------------------------
    def warn_once(self, key: str, message: str) -> None:
        """Warn on the terminal, once per `key` for the life of the run."""
        if key in self.warned:
            return
        self.warned.add(key)
        self.terminal.warn(message)

    def ensure_active(self, what: str) -> None:
        """Refuse a call on a finished run."""
        if self.finished:
            raise UsageError(f"Run ({self.start.run_id}) is finished. The call to `{what}` will be ignored.")

    # -- the store -------------------------------------------------------------------------------
    def embedded_store(self) -> Store | None:
        """The run's embedded store, opened on first use after a fast start; None without one."""
        if self.store is None and self.store_opener is not None:
            with self._store_lock:
                if self.store is None:
                    self.store = self.store_opener()
        return self.store

    # -- parts -----------------------------------------------------------------------------------
    def attach(self, part: Part, phase: ShutdownPhase) -> None:
        """Have `finish()` stop `part` in `phase`."""
        self._parts.append((phase, part))

    def part(self, kind: type[_P]) -> _P | None:
        """The first attached part of type `kind`, if any."""
        for _, part in self._parts:
            if isinstance(part, kind):
                return part
        return None

    def parts(self) -> list[Part]:
        """The attached parts, in the order `finish()` stops them."""
        return [part for _, part in sorted(self._parts, key=lambda item: item[0])]

    def stop_parts(self) -> None:
        """Stop every attached part, phase by phase; one that fails is reported and skipped."""
        for part in self.parts():
            try:
                part.stop()
            except Exception as exc:
                self.terminal.warn(f"stopping {type(part).__name__} failed: {exc}")
