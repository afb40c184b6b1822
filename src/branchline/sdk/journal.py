"""The run journal: append-only framed records, one kernel write per record.

File layout: an 8-byte magic header, then frames of `<length:u32><crc32:u32><body>`, where the
body is a msgpack list `[sequence, kind, *fields]`. A torn tail (a killed process) is detected by
length and checksum; a damaged frame in the middle is read past (sdk/journal_read.py).

A write the kernel refuses (a full disk, a file size limit) is never acknowledged as written: the
torn part is cut back so the file stays well-formed, and the record is held in memory (up to
`HOLD_LIMIT` bytes; past it, records are dropped and counted) and written, in order, once the disk
takes it again. `log()` never raises for this; the journal says once what happened.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import sys
import threading
import time
import weakref
import zlib
from collections import deque
from pathlib import Path
from typing import Any

import msgpack

from branchline.records import SPECS
from branchline.sdk.values import encode_default
from branchline.vocab import RecordKind

__all__ = [
    "MAGIC",
    "FRAME",
    "HOLD_LIMIT",
    "HOLD_WAIT",
    "JournalWriter",
    "ROW_HEAD",
    "ROW_MARK",
    "row_struct",
]

MAGIC = b"BLJRNL01"
FRAME = struct.Struct("<II")
MAX_RECORD = 64 * 1024 * 1024
#: Records the disk refuses are held in memory up to this many bytes, then dropped (and counted).
HOLD_LIMIT = 64 * 1024 * 1024
#: How long closing the journal waits for the disk to take held records back, by default.
HOLD_WAIT = 30.0
#: Held records are retried at most this often while logging goes on.
_RETRY_SECONDS = 0.2


def _size(count: int) -> str:
    return f"{count / (1024 * 1024):.0f} MiB" if count >= 1024 * 1024 else f"{count / 1024:.0f} KiB"


def _say(message: str) -> None:
    print(f"branchline: {message}", file=sys.stderr, flush=True)


class JournalWriter:
    """Appends records; `write` returns once the kernel has the bytes, or holds them (see module doc).

    Thread safety: `lock` (re-entrant) guards the sequence number, the shared packer, the write
    and the held records, so records from background threads (console, system metrics, files) and
    from the training thread land whole and in sequence order. Every writer takes it: `write` does,
    and `Run.log`'s fast path, which bypasses `write`, takes it around its own pack-and-write.
    Re-entrant so that a signal handler in the training thread that writes a record (e.g. one
    calling `finish`) cannot deadlock against the code it interrupted.

    Appenders write to `wfd`: the journal's descriptor, or -1 while records are held, so that a
    later record can never overtake a held one; a failed append goes to `hold`.
    """

    def __init__(self, path: Path, *, start_seq: int = 0, discard: bool = False) -> None:
        self.path = path
        self.lock = threading.RLock()
        if discard:
            self.fd = os.open(os.devnull, os.O_WRONLY)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            if os.fstat(self.fd).st_size == 0:
                os.write(self.fd, MAGIC)
        self.wfd = self.fd
        self.seq = start_seq
        self.packer = msgpack.Packer(default=encode_default)
        self.hold_limit = HOLD_LIMIT
        self.held: deque[tuple[int, bytes]] = deque()  # (sequence, frame), oldest first
        self.held_bytes = 0
        self.held_total = 0  # records that went through `held` since the last recovery
        self.dropped = 0  # records lost because `held` was full, or still held at close
        self.dropped_steps = 0  # how many of them were history rows (logged steps)
        self._retry_at = 0.0
        self._error: str | None = None
        _LIVE_WRITERS.add(self)

    def write(self, kind: RecordKind, *fields: Any) -> int:
        """Append one record from any thread; raises TypeError (nothing written) if a value cannot
        be stored, OSError(EBADF) once the journal is closed."""
        with self.lock:
            if self.fd < 0:
                raise OSError(errno.EBADF, f"{self.path}: the journal is closed")
            seq = self.seq + 1
            body = self.packer.pack(SPECS[kind].build(seq, *fields))  # as records.py declares it
            frame = FRAME.pack(len(body), zlib.crc32(body)) + body
            try:
                written = os.write(self.wfd, frame)
                if written != len(frame):
                    self.hold(seq, frame, written)
            except OSError as exc:
                self.hold(seq, frame, exc)
            self.seq = seq
            return seq

    def hold(self, seq: int, frame: bytes, outcome: int | OSError) -> None:
        """Keep a record the kernel did not take whole (`outcome`: bytes written, or the error).

        Called under `lock`. Raises only OSError(EBADF) once the journal is closed.
        """
        with self.lock:
            if self.fd < 0:
                raise OSError(errno.EBADF, f"{self.path}: the journal is closed")
            if isinstance(outcome, int) and outcome > 0:
                self._cut(outcome)
            if self.wfd >= 0:  # the first refusal since the journal was last writable
                self.wfd = -1
                self.held_total = 0
                reason = outcome.strerror if isinstance(outcome, OSError) else None
                self._error = reason or "a write was cut short: the disk is full, or a file size limit was reached"
                self._retry_at = time.monotonic() + _RETRY_SECONDS
                _say(
                    f"WARNING cannot write the run's journal in {self.path.parent} ({self._error}). "
                    f"Logged steps are held in memory (up to {_size(self.hold_limit)}) and written "
                    "as soon as the disk takes them again: free space there. Training goes on; log() "
                    "does not raise."
                )
            if self.held_bytes + len(frame) > self.hold_limit:
                if not self.dropped:
                    _say(
                        f"WARNING the memory held for the journal in {self.path.parent} is full "
                        f"({_size(self.hold_limit)}): steps logged from now on are dropped until "
                        "the disk takes records again; the count is reported."
                    )
                self._lose(frame)
            else:
                self.held.append((seq, frame))
                self.held_bytes += len(frame)
                self.held_total += 1
            if time.monotonic() >= self._retry_at:
                self.retry()

    def _lose(self, frame: bytes) -> None:
        self.dropped += 1
        body = frame[FRAME.size :]
        if body[:1] == bytes([ROW_MARK]):
            self.dropped_steps += 1
            return
        with contextlib.suppress(Exception):
            if msgpack.unpackb(body, strict_map_key=False)[1] == RecordKind.HISTORY:
                self.dropped_steps += 1

    def _cut(self, torn: int) -> None:
        """Remove the `torn` bytes a short write left at the end, so every later frame is readable."""
        with contextlib.suppress(OSError):
            # If this fails too, readers skip the torn frame as damage (they resynchronise).
            os.ftruncate(self.fd, os.fstat(self.fd).st_size - torn)

    def retry(self) -> bool:
        """Write held records, oldest first, until the disk refuses one; whether none are left."""
        with self.lock:
            self._retry_at = time.monotonic() + _RETRY_SECONDS
            held = self.held
            while held:
                _, frame = held[0]
                try:
                    written = os.write(self.fd, frame)
                except OSError:
                    return False
                if written != len(frame):
                    self._cut(written)
                    return False
                held.popleft()
                self.held_bytes -= len(frame)
            if self.wfd < 0 and self.fd >= 0:
                self.wfd = self.fd
                self._recovered()
            return True

    def _recovered(self) -> None:
        where = self.path.parent
        if self.dropped:
            _say(
                f"WARNING the journal in {where} is writable again: {self.held_total} records held in "
                f"memory were written; {self.dropped_steps} logged steps ({self.dropped} records) that came "
                "while that memory was full were dropped and are lost."
            )
        else:
            _say(
                f"the journal in {where} is writable again: the {self.held_total} records held in memory "
                "were written; none were lost."
            )

    @property
    def written_seq(self) -> int:
        """The sequence number of the last record the kernel has, if none is held: `seq`."""
        with self.lock:
            return self.held[0][0] - 1 if self.held else self.seq

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self, hold_wait: float = HOLD_WAIT) -> None:
        """Close the journal; records still held are retried for up to `hold_wait` seconds first."""
        deadline = time.monotonic() + hold_wait
        while self.held and self.fd >= 0 and not self.retry() and time.monotonic() < deadline:
            time.sleep(_RETRY_SECONDS)
        # Under the lock: a late background write must never reach a reused descriptor number.
        with self.lock:
            if self.fd < 0:
                return
            if self.held:
                last = self.written_seq
                lost = len(self.held)
                for _, frame in self.held:
                    self._lose(frame)
                self.held.clear()
                self.held_bytes = 0
                # Readers stop at what the kernel has: the run ends at the last written record.
                self.seq = last
                _say(
                    f"WARNING the journal in {self.path.parent} could not take the last {lost} records before "
                    f"the run ended ({self._error}): {self.dropped_steps} logged steps ({self.dropped} records) "
                    "in all are lost. Everything written before them is kept and stored."
                )
            with contextlib.suppress(OSError):
                os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
            self.wfd = -1


# A fork while a background thread held a journal lock would leave the child's copy held
# forever; the child gets fresh locks (it must not share the parent's journal anyway).
_LIVE_WRITERS: weakref.WeakSet[JournalWriter] = weakref.WeakSet()


def _reset_locks_in_child() -> None:
    for writer in list(_LIVE_WRITERS):
        writer.lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_locks_in_child)


# A float row is a binary frame body: ROW_MARK (never the first byte of a msgpack value), layout
# id, sequence, step, timestamp, runtime, and the row's values as little-endian doubles in the
# order of the layout's keys (a ROW_SCHEMA record written before the first such row).
ROW_MARK = 0xC1
ROW_HEAD = struct.Struct("<BHQqdd")


def row_struct(width: int) -> struct.Struct:
    """The frame body layout of a float row with `width` values."""
    return struct.Struct(f"<BHQqdd{width}d")
