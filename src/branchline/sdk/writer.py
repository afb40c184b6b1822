"""The writer: tails a run's journal and applies its records to a sink in batches.

It runs in a child process so that decoding, columnising and storing never take the training
process's GIL; the journal is the only thing the two share. Applying is idempotent on
(session, sequence), so a retry, a restart or a concurrent `branchline sync` never duplicates.

Protocol: the parent writes JSON lines to the child's stdin (`{"cmd": "finish", "final_seq": n}`);
the child answers on stdout (`ready`, `stop`, `error`, `done`). End of stdin means the parent is
gone: the child applies what the journal holds and marks the run crashed unless it exited.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from branchline.records import RecordError
from branchline.rejects import isolate, set_aside
from branchline.runspec import RunSpec
from branchline.sdk.journal_read import JournalReader, RowBlocks
from branchline.sdk.media.stage import stage_for
from branchline.sdk.sink import Sink, local_store, make_sink
from branchline.sdk.stopping import DEFAULT_STOP_GRACE, StopEscalation
from branchline.sdk.sync import describe_failure
from branchline.vocab import RecordKind

__all__ = ["WRITER_NICENESS", "WriterLoop", "main"]

#: How much lower than the training process the writer is scheduled.
WRITER_NICENESS = 5


class WriterLoop:
    def __init__(
        self,
        journal: Path,
        sink: Sink,
        session_id: str,
        incarnation_id: str,
        *,
        send: Callable[[dict[str, Any]], None],
        poll_seconds: float = 0.1,
        heartbeat_seconds: float = 30.0,
        run_path: str = "",
        escalation: StopEscalation | None = None,
    ) -> None:
        self.reader = JournalReader(journal, blocks=True)
        self.blocks = RowBlocks()
        self.sink = sink
        self.session_id = session_id
        self.incarnation_id = incarnation_id
        self.send = send
        self.run_path = run_path  # entity/project/run_id, to name the run in reports
        self.poll_seconds = poll_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.pending: list[list[Any]] = []
        self.applied = 0
        self.saw_exit = False
        self.error_reported = False
        self.stop_sent = False
        #: Ends the training process if it ignores a stop (sdk/stopping.py); None: never.
        self.escalation = escalation
        self.backoff = 0.0
        # Media records become stored files (encoded here, never on the training thread).
        self.media = stage_for(journal, incarnation_id, sink, run_path, self._media_failed)

    def step(self) -> bool:
        """Read and apply what is new; returns whether anything was applied."""
        if len(self.pending) < 20_000:
            records, _ = self.reader.read_available(limit=20_000 - len(self.pending))
            if len(self.reader.skipped) > self.reader.reported:
                self._report_damage()
            self.pending.extend(self.media.transform(self.blocks.compact(records)))
        if not self.pending:
            return False
        try:
            self.applied = isolate(self._apply, self.pending, bad=_refused, rejected=set_aside(self.sink.rejected))
        except Exception as exc:
            self._report_rejected()
            self._report(exc)
            self.backoff = min(5.0, max(0.2, self.backoff * 2)) * (0.5 + random.random())
            return False
        self.backoff = 0.0
        self._report_rejected()
        if any(int(r[1]) == RecordKind.EXIT for r in self.pending):
            self.saw_exit = True
        self.pending = []
        return True

    def _report(self, exc: BaseException) -> None:
        # Said plainly: a database error carries its statement and parameters, which help nobody.
        said = describe_failure(exc)
        print(f"branchline writer: {said}", file=sys.stderr, flush=True)
        if not self.error_reported:
            self.error_reported = True
            self.send({"event": "error", "message": f"{said}. Records stay in the journal and are retried."})

    def _media_failed(self, message: str) -> None:
        print(f"branchline writer: {message}", file=sys.stderr, flush=True)
        self.send({"event": "error", "message": message})

    def _report_damage(self) -> None:
        """Say where the journal was damaged; the records after the damage are stored all the same."""
        reader = self.reader
        for skip in reader.skipped[reader.reported :]:
            message = f"the journal {reader.path} is damaged: {skip.describe()}; the records after it are stored."
            print(f"branchline writer: {message}", file=sys.stderr, flush=True)
            self.send({"event": "error", "message": message})
        reader.reported = len(reader.skipped)

    def _apply(self, records: list[list[Any]]) -> int:
        return self.sink.apply(self.session_id, records)

    def _report_rejected(self) -> None:
        """Say once, for each record that could not be stored, which run, step and key it was."""
        run = self.run_path or self.incarnation_id
        for rejected in self.sink.rejected:
            message = rejected.message(run)
            print(f"branchline writer: {message}", file=sys.stderr, flush=True)
            self.send({"event": "error", "message": message})
        self.sink.rejected.clear()

    def heartbeat(self) -> None:
        try:
            stop = self.sink.heartbeat(self.incarnation_id)
        except Exception as exc:
            self._report(exc)
            return
        if stop and not self.stop_sent:
            self.stop_sent = True
            self.send({"event": "stop"})
            if self.escalation is not None:
                self.escalation.request()

    def _mark_killed(self) -> None:
        try:
            self.sink.mark_killed(self.incarnation_id)
        except Exception as exc:
            # A server from before stops were bounded has no such call: crashed is still true.
            self._report(exc)
            self.sink.mark_crashed(self.incarnation_id, self.session_id)

    def drain(self, deadline: float | None) -> None:
        while deadline is None or time.monotonic() < deadline:
            if not self.step():
                if not self.pending:
                    records, _ = self.reader.read_available(limit=1)
                    if not records:
                        return
                    self.pending.extend(self.media.transform(self.blocks.compact(records)))
                else:
                    time.sleep(self.backoff or self.poll_seconds)

    def serve(self, commands: queue.Queue[dict[str, Any] | None]) -> None:
        last_heartbeat = 0.0
        self.send({"event": "ready"})
        while True:
            worked = self.step()
            now = time.monotonic()
            if now - last_heartbeat >= self.heartbeat_seconds:
                last_heartbeat = now
                self.heartbeat()
            if self.escalation is not None:
                self.escalation.tick()
            try:
                command = commands.get(timeout=0 if worked else (self.backoff or self.poll_seconds))
            except queue.Empty:
                continue
            if command is None:  # the parent is gone: keep what it wrote, then say it crashed
                self.reader.final = True  # nothing writes the journal any more
                self.drain(deadline=None)
                if not self.saw_exit:
                    try:
                        if self.escalation is not None and self.escalation.escalated:
                            self._mark_killed()  # it ignored the stop and was terminated
                        else:
                            self.sink.mark_crashed(self.incarnation_id, self.session_id)
                    except Exception as exc:
                        self._report(exc)
                return
            if command.get("cmd") == "finish":
                final = int(command.get("final_seq", 0))
                self.reader.final = True  # the training process has closed the journal
                timeout = float(command.get("timeout") or 0)
                deadline = time.monotonic() + timeout if timeout > 0 else None
                failures = 0
                while self.applied < final and (deadline is None or time.monotonic() < deadline):
                    if self.step():
                        failures = 0
                    elif self.backoff:
                        # A sink that keeps failing must not hold finish() forever: the journal
                        # keeps the records for `branchline sync`.
                        failures += 1
                        if failures >= 5:
                            break
                        time.sleep(self.backoff)
                    elif self.reader.exhausted:
                        break  # all the journal holds is applied: damage took the rest
                    else:
                        time.sleep(0.01)
                done: dict[str, Any] = {
                    "event": "done",
                    "applied": self.applied,
                    "pending": max(0, final - self.applied),
                }
                footer_keys = int(command.get("footer_keys") or 0)
                if footer_keys > 0 and self.applied >= final:
                    done["history"] = self.footer_history(footer_keys)
                self.send(done)
                return

    def footer_history(self, limit: int) -> dict[str, list[float]]:
        """Up to `limit` numeric history keys, about 40 points each, for the finish summary's sparklines."""
        store = local_store(self.sink)
        if store is None:
            return {}  # a server: the footer shows last values only
        try:
            keys = [
                key
                for key, info in store.history_keys(self.incarnation_id).items()
                if info["numeric"] and not key.startswith("_")
            ]
            history: dict[str, list[float]] = {}
            for key in sorted(keys)[:limit]:
                _steps, values = store.read_series(self.incarnation_id, key)
                if len(values) > 40:
                    values = values[:: max(1, len(values) // 40)]
                history[key] = [float(v) for v in values]
        except Exception as exc:
            print(f"branchline writer: no sparklines: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return {}
        return history


def _refused(exc: BaseException) -> bool:
    """Whether the sink refused a batch for its records' sake (not for a network or disk fault)."""
    return isinstance(exc, RecordError)


def _read_commands(commands: queue.Queue[dict[str, Any] | None]) -> None:
    for line in sys.stdin:
        line = line.strip()
        if line:
            try:
                commands.put(json.loads(line))
            except ValueError:
                continue
    commands.put(None)


def _prewarm(kind: str) -> None:
    """Import what applying needs while the parent is still starting the run."""
    try:
        if kind == "store":
            import branchline.store
            import branchline.store.writes
        elif kind == "server":
            import branchline.sdk.http_sink  # noqa: F401
    except Exception:
        pass  # make_sink reports the real problem once it is asked to open the target


def _redirect_stderr(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 2)
    os.close(fd)


def main(argv: list[str]) -> int:
    """`--prewarm KIND`: import early, then read the run's arguments as the first line of stdin."""
    with contextlib.suppress(OSError):
        # When the machine is busy, training goes first: the journal holds what the writer has not
        # stored yet, and finish() waits for it.
        os.nice(WRITER_NICENESS)
    parent_pid = os.getppid()  # the training process, which a stop may have to end
    if len(argv) >= 2 and argv[0] == "--prewarm":
        _prewarm(argv[1])
        first = sys.stdin.readline()
        if not first.strip():
            return 0  # init() failed before the run existed: nothing to do
        args = json.loads(first)
    else:
        args = json.loads(argv[0])
    if args.get("log"):
        _redirect_stderr(args["log"])
    lock = threading.Lock()

    def send(message: dict[str, Any]) -> None:
        with lock:
            try:
                sys.stdout.write(json.dumps(message) + "\n")
                sys.stdout.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # the parent is gone; the journal still has everything

    try:
        sink = make_sink(args["target"])
    except Exception as exc:
        send(
            {
                "event": "error",
                "message": f"could not open the store: {type(exc).__name__}: {exc}",
            }
        )
        send({"event": "fatal"})
        return 1
    if args.get("begin"):
        # A fast start (sdk/fast_start.py): the run is created here, from the same spec as the
        # journal's header, so a later `branchline sync` of that journal finds the same run.
        try:
            sink.begin_run(RunSpec.from_json(args["begin"]))
        except Exception as exc:
            send(
                {
                    "event": "error",
                    "message": f"could not create the run in the store: {type(exc).__name__}: {exc}",
                }
            )
            send({"event": "fatal"})
            sink.close()
            return 1
        send({"event": "begun"})
    commands: queue.Queue[dict[str, Any] | None] = queue.Queue()
    threading.Thread(target=_read_commands, args=(commands,), daemon=True).start()
    loop = WriterLoop(
        Path(args["journal"]),
        sink,
        args["session_id"],
        args["incarnation_id"],
        send=send,
        poll_seconds=float(args.get("poll_seconds", 0.1)),
        heartbeat_seconds=float(args.get("heartbeat_seconds", 30.0)),
        run_path=str(args.get("run_path") or ""),
        escalation=StopEscalation(parent_pid, float(args.get("stop_grace", DEFAULT_STOP_GRACE))),
    )
    try:
        loop.serve(commands)
    finally:
        sink.close()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main(sys.argv[1:]))
