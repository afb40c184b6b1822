"""The run journal: append-only framed records, one kernel write per record.

File layout: an 8-byte magic header, then frames of `<length:u32><crc32:u32><body>`, where the
body is a msgpack list `[sequence, kind, *fields]`. A torn or corrupt tail (a killed process, a
full disk) is detected by length and checksum; reading stops at the last good frame.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import threading
import weakref
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from branchline.sdk.values import encode_default
from branchline.vocab import RecordKind

__all__ = [
    "MAGIC",
    "FRAME",
    "JournalWriter",
    "JournalReader",
    "read_journal",
    "ReadResult",
]

MAGIC = b"BLJRNL01"
FRAME = struct.Struct("<II")
MAX_RECORD = 64 * 1024 * 1024
_ROW_MARK_BYTE = b"\xc1"
_FLOAT_ROW = int(RecordKind.FLOAT_ROW)
_READ_CHUNK = 8 * 1024 * 1024


class JournalWriter:
    """Appends records; `write` returns once the kernel has the bytes.

    Thread safety: `lock` (re-entrant) guards the sequence number, the shared packer and the
    write, so records from background threads (console, system metrics, files) and from the
    training thread land whole and in sequence order. Every writer takes it: `write` does, and
    `Run.log`'s fast path, which bypasses `write`, takes it around its own pack-and-write.
    Re-entrant so that a signal handler in the training thread that writes a record (e.g. one
    calling `finish`) cannot deadlock against the code it interrupted.
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
        self.seq = start_seq
        self.packer = msgpack.Packer(default=encode_default)
        _LIVE_WRITERS.add(self)

    def write(self, kind: int, *fields: Any) -> int:
        """Append one record from any thread; raises TypeError (nothing written) if a value cannot
        be stored, OSError(EBADF) once the journal is closed."""
        with self.lock:
            if self.fd < 0:
                raise OSError(errno.EBADF, f"{self.path}: the journal is closed")
            seq = self.seq + 1
            body = self.packer.pack([seq, kind, *fields])
            os.write(self.fd, FRAME.pack(len(body), zlib.crc32(body)) + body)
            self.seq = seq
            return seq

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        # Under the lock: a late background write must never reach a reused descriptor number.
        with self.lock:
            if self.fd >= 0:
                with contextlib.suppress(OSError):
                    os.fsync(self.fd)
                os.close(self.fd)
                self.fd = -1


# A fork while a background thread held a journal lock would leave the child's copy held
# forever; the child gets fresh locks (it must not share the parent's journal anyway).
_LIVE_WRITERS: weakref.WeakSet[JournalWriter] = weakref.WeakSet()


def _reset_locks_in_child() -> None:
    for writer in list(_LIVE_WRITERS):
        writer.lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_locks_in_child)


@dataclass
class ReadResult:
    records: list[list[Any]]
    end_offset: int  # offset just past the last good frame
    torn_bytes: int  # bytes after it that did not form a good frame


class JournalReader:
    """Reads frames incrementally from an offset; used by the writer to tail a live journal."""

    def __init__(self, path: Path, *, blocks: bool = False) -> None:
        """With `blocks`, runs of float rows come out as ROW_BLOCK records, decoded in bulk."""
        self.path = path
        self.offset = 0
        self._handle: Any = None
        self._unparsed = b""
        self._layouts: dict[int, list[str]] | None = {} if blocks else None

    def _open(self) -> bool:
        if self._handle is None:
            try:
                self._handle = open(self.path, "rb")  # noqa: SIM115 - kept open while tailing
            except FileNotFoundError:
                return False
            magic = self._handle.read(len(MAGIC))
            if magic != MAGIC:
                if len(magic) < len(MAGIC):
                    self._handle.close()
                    self._handle = None
                    return False
                raise ValueError(f"{self.path} is not a branchline journal.")
            self.offset = len(MAGIC)
        return True

    def read_available(self, limit: int = 50_000) -> tuple[list[list[Any]], int]:
        """New complete records since the last call, and the count of bytes past them.

        Bytes read but not parsed yet (past `limit`, or a frame still being written) are kept,
        so a long backlog is read once, not once per batch.
        """
        if not self._open():
            return [], 0
        handle = self._handle
        if len(self._unparsed) < _READ_CHUNK:
            handle.seek(self.offset + len(self._unparsed))
            more = handle.read(_READ_CHUNK)
            if more:
                self._unparsed = self._unparsed + more if self._unparsed else more
        records, used = _parse(self._unparsed, limit, self._layouts)
        self.offset += used
        self._unparsed = self._unparsed[used:]
        return records, len(self._unparsed)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


# A float row is a binary frame body: ROW_MARK (never the first byte of a msgpack value), layout
# id, sequence, step, timestamp, runtime, and the row's values as little-endian doubles in the
# order of the layout's keys (a ROW_SCHEMA record written before the first such row).
ROW_MARK = 0xC1
ROW_HEAD = struct.Struct("<BHQqdd")


def row_struct(width: int) -> struct.Struct:
    """The frame body layout of a float row with `width` values."""
    return struct.Struct(f"<BHQqdd{width}d")


def _parse(data: bytes, limit: int, layouts: dict[int, list[str]] | None = None) -> tuple[list[list[Any]], int]:
    """Good records from the start of `data` (at most `limit`) and the bytes they used.

    Given `layouts` (filled from the ROW_SCHEMA records read), runs of float rows of a known layout
    are returned as ROW_BLOCK records instead of one record per row.
    """
    records: list[list[Any]] = []
    taken = 0
    pos = 0
    size = len(data)
    unpack = msgpack.unpackb
    while pos + 8 <= size and taken < limit:
        length, crc = FRAME.unpack_from(data, pos)
        end = pos + 8 + length
        if length > MAX_RECORD or end > size:
            break
        if layouts is not None and data[pos + 8] == ROW_MARK and length >= ROW_HEAD.size:
            keys = layouts.get(_LAYOUT.unpack_from(data, pos + 9)[0])
            if keys is not None and length == ROW_HEAD.size + 8 * len(keys):
                block, rows, pos = _float_block(data, pos, length, keys, limit - taken)
                if block is None:
                    break  # the first row's checksum is wrong: a torn or corrupt tail
                records.append(block)
                taken += rows
                continue
        body = data[pos + 8 : end]
        if zlib.crc32(body) != crc:
            break
        if body[:1] == _ROW_MARK_BYTE:
            if length < ROW_HEAD.size or (length - ROW_HEAD.size) % 8:
                break
            _, layout, seq, step, ts, runtime = ROW_HEAD.unpack_from(body)
            records.append([seq, _FLOAT_ROW, step, ts, runtime, layout, body[ROW_HEAD.size :]])
            pos = end
            continue
        try:
            record = unpack(body, strict_map_key=False)
        except Exception:
            break
        if layouts is not None and type(record) is list and len(record) > 3 and record[1] == RecordKind.ROW_SCHEMA:
            layouts[int(record[2])] = [str(k) for k in record[3]]
        records.append(record)
        taken += 1
        pos = end
    return records, pos


_LAYOUT = struct.Struct("<H")


def _float_block(
    data: bytes, pos: int, length: int, keys: list[str], max_rows: int
) -> tuple[list[Any] | None, int, int]:
    """The float rows from `pos` that share its frame length and layout, as one ROW_BLOCK record.

    Decoded as one numpy array (the writer process has numpy loaded; the training process never
    calls this). Returns the record (None when even the first checksum fails), its row count and
    the offset after it.
    """
    import numpy as np

    fields: list[Any] = [
        ("length", "<u4"),
        ("crc", "<u4"),
        ("mark", "u1"),
        ("layout", "<u2"),
        ("seq", "<i8"),
        ("step", "<i8"),
        ("ts", "<f8"),
        ("runtime", "<f8"),
    ]
    if keys:
        fields.append(("values", "<f8", (len(keys),)))
    stride = 8 + length
    count = min((len(data) - pos) // stride, max_rows)
    frames = np.frombuffer(data, dtype=np.dtype(fields), count=count, offset=pos)
    layout = frames["layout"][0]
    same = (frames["length"] == length) & (frames["mark"] == ROW_MARK) & (frames["layout"] == layout)
    if not same.all():
        count = int(np.argmin(same))
    view = memoryview(data)
    start = pos + 8
    for index, crc in enumerate(frames["crc"][:count].tolist()):
        if zlib.crc32(view[start : start + length]) != crc:
            count = index
            break
        start += stride
    if count == 0:
        return None, 0, pos
    frames = frames[:count]
    values = frames["values"].tobytes() if keys else b""
    block = [
        int(frames["seq"][-1]),
        int(RecordKind.ROW_BLOCK),
        list(keys),
        frames["seq"].tobytes(),
        frames["step"].tobytes(),
        frames["ts"].tobytes(),
        frames["runtime"].tobytes(),
        values,
    ]
    return block, count, pos + count * stride


def read_journal(path: Path) -> ReadResult:
    """Every good record of a journal, and how many bytes of torn or corrupt tail follow them."""
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        if len(data) < len(MAGIC) and MAGIC.startswith(data):
            return ReadResult([], len(data), 0)
        raise ValueError(f"{path} is not a branchline journal (bad header).")
    records, used = _parse(data[len(MAGIC) :], limit=2**62)
    end = len(MAGIC) + used
    return ReadResult(records, end, len(data) - end)


def iter_journals(root: Path) -> Iterator[Path]:
    yield from sorted(root.glob("runs/*/journal.blj"))


class RowBlocks:
    """Turns runs of float rows into ROW_BLOCK records: columns the store applies in one pass.

    It remembers the layouts (ROW_SCHEMA records) it has seen, so feed it a journal's records in
    order, from the start.
    """

    def __init__(self) -> None:
        self.layouts: dict[int, list[str]] = {}

    def compact(self, records: list[list[Any]]) -> list[list[Any]]:
        out: list[list[Any]] = []
        run: list[list[Any]] = []
        for record in records:
            kind = int(record[1])
            if kind == _FLOAT_ROW:
                if run and run[0][5] != record[5]:
                    out.append(self._block(run))
                    run = []
                run.append(record)
                continue
            if run:
                out.append(self._block(run))
                run = []
            if kind == RecordKind.ROW_SCHEMA:
                self.layouts[int(record[2])] = [str(k) for k in record[3]]
            out.append(record)
        if run:
            out.append(self._block(run))
        return out

    def _block(self, rows: list[list[Any]]) -> list[Any]:
        keys = self.layouts.get(int(rows[0][5]))
        if keys is None:
            raise ValueError(f"float row {rows[0][0]} uses layout {rows[0][5]}, which no ROW_SCHEMA record defined")
        return [
            rows[-1][0],
            int(RecordKind.ROW_BLOCK),
            keys,
            array("q", [r[0] for r in rows]).tobytes(),
            array("q", [r[2] for r in rows]).tobytes(),
            array("d", [r[3] for r in rows]).tobytes(),
            array("d", [r[4] for r in rows]).tobytes(),
            b"".join(r[6] for r in rows),
        ]
