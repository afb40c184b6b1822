"""Ending the training process when it ignores a stop from the UI or API.

The writer sees a stop at a heartbeat and asks the training process to raise KeyboardInterrupt
(sdk/init.py). A process that ignores SIGINT (started under `nohup`, or a framework with its own
handler) would then run on and the run would show "stop requested" forever, so the writer, which
outlives the training process, escalates: SIGTERM once `grace` seconds have passed, SIGKILL after
another `grace`. When the process is gone the writer stores what its journal holds, as after any
crash, and marks the run `killed` with a note instead of `crashed` (sdk/writer.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable

__all__ = ["DEFAULT_STOP_GRACE", "StopEscalation"]

#: Seconds a stopped process is given to end before the next, harder signal.
DEFAULT_STOP_GRACE = 15.0


class StopEscalation:
    """SIGTERM, then SIGKILL, for the training process `pid` once a stop has been ignored."""

    def __init__(
        self,
        pid: int,
        grace: float = DEFAULT_STOP_GRACE,
        *,
        clock: Callable[[], float] = time.monotonic,
        parent: Callable[[], int] = os.getppid,
    ) -> None:
        self.pid = pid
        self.grace = max(0.0, grace)
        self.clock = clock
        self.parent = parent
        self.requested_at: float | None = None
        #: The signals sent so far, in order.
        self.sent: list[signal.Signals] = []
        #: Set when the training process turned out to be gone before a signal was due.
        self.gone = False

    @property
    def escalated(self) -> bool:
        """Whether the process was sent a signal: it did not end when interrupted."""
        return bool(self.sent)

    def request(self) -> None:
        """A stop was seen (the training process is being interrupted now): start the clock."""
        if self.requested_at is None:
            self.requested_at = self.clock()

    def tick(self) -> None:
        """Send the next signal if its time has come; called from the writer's loop."""
        if self.requested_at is None or self.gone or len(self.sent) >= 2:
            return
        due = self.requested_at + self.grace * (len(self.sent) + 1)
        if self.clock() < due:
            return
        # Only the process that started this writer: once it is gone the writer is re-parented,
        # and its pid may already name another process.
        if self.pid <= 1 or self.parent() != self.pid:
            self.gone = True  # nothing left to signal
            return
        sig = signal.SIGTERM if not self.sent else signal.SIGKILL
        self.sent.append(sig)
        print(
            f"branchline writer: the training process (pid {self.pid}) ignored the stop for "
            f"{self.clock() - self.requested_at:.0f} s; sending {sig.name}",
            file=sys.stderr,
            flush=True,
        )
        with contextlib.suppress(ProcessLookupError):  # it ended on its own meanwhile
            os.kill(self.pid, sig)
