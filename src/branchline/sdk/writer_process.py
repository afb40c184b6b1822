"""The writer process: the child that applies a run's journal to the sink (sdk/writer.py)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from branchline.sdk.terminal import Terminal

__all__ = ["REMOTE_FINISH_TIMEOUT", "WRITER_KEY_ENV", "WriterProcess"]

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
        on_stop: Callable[[], object],
        env: dict[str, str] | None = None,
        on_error: Callable[[], object] | None = None,
    ) -> None:
        self.terminal = terminal
        self.on_stop = on_stop
        self.on_error = on_error
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
                if self.on_error is not None:
                    self.on_error()
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
