"""A commit of an artifact version that runs in the background, and what waits for it."""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["PendingCommit"]


class PendingCommit:
    """An artifact commit handed to a background thread; `wait()` blocks until it is done."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.error: BaseException | None = None
        self.reported = False  # the error reached the user through wait()
        self._done = threading.Event()

    def run(self, job: Callable[[], object]) -> None:
        try:
            job()
        except BaseException as exc:  # kept for wait(); the thread itself must not die loudly
            self.error = exc
        finally:
            self._done.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait without raising; True once the commit has finished (either way)."""
        return self._done.wait(timeout)

    def wait(self, timeout: float | None = None) -> None:
        """Block until committed; raise the commit's error, or TimeoutError."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"Artifact {self.name!r} is still being logged after {timeout} s.")
        if self.error is not None:
            self.reported = True
            raise self.error
