"""Reading a run journal (see sdk/journal.py for the format): tailing it live, or all at once.

A torn tail (a killed process) ends the good records. A damaged frame in the middle (a flipped
bit, overwritten bytes) does not: the reader resynchronises on the next frame whose length,
checksum and sequence number hold, and records what it skipped (`Skip`) so that its owner can say
how many bytes, where, and which records were in them.
"""

from __future__ import annotations

import struct
import zlib
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from branchline.records import SPECS
from branchline.sdk.journal import FRAME, MAGIC, MAX_RECORD, ROW_HEAD, ROW_MARK
from branchline.vocab import RecordKind

__all__ = ["JournalReader", "ReadResult", "RowBlocks", "Skip", "read_journal"]

_ROW_MARK_BYTE = bytes([ROW_MARK])
_FLOAT_ROW = int(RecordKind.FLOAT_ROW)
_ROW_BLOCK = SPECS[RecordKind.ROW_BLOCK]  # float rows as columns, built as records.py declares them
_READ_CHUNK = 8 * 1024 * 1024
_LAYOUT = struct.Struct("<H")
#: The smallest frame: a header and a msgpack `[seq, kind]` of three bytes.
_MIN_FRAME = 8 + 3


@dataclass(frozen=True)
class Skip:
    """Damaged bytes a reader skipped: where, how many, and the records lost with them."""

    offset: int  # in the file
    size: int
    first_lost: int  # sequence numbers of the records that were in them (may be an empty range)
    last_lost: int

    def describe(self) -> str:
        lost = self.last_lost - self.first_lost + 1
        records = (
            "no record lost"
            if lost <= 0
            else f"record {self.first_lost} lost"
            if lost == 1
            else f"records {self.first_lost}-{self.last_lost} lost"
        )
        return f"skipped {self.size} damaged bytes at offset {self.offset} ({records})"


@dataclass
class ReadResult:
    records: list[list[Any]]
    end_offset: int  # offset just past the last good frame
    torn_bytes: int  # bytes after it that did not form a good frame
    skipped: list[Skip] = field(default_factory=list)  # damage in the middle, read past


class JournalReader:
    """Reads frames incrementally from an offset; used by the writer to tail a live journal.

    While the journal may still grow, an incomplete frame at the end is waited for, and damage is
    read past only once a second read from the disk shows the same bytes (a read racing a write
    may see a frame half-copied). Set `final` once nothing writes the journal any more: a frame
    that cannot complete is then damage too.
    """

    def __init__(self, path: Path, *, blocks: bool = False, final: bool = False) -> None:
        """With `blocks`, runs of float rows come out as ROW_BLOCK records, decoded in bulk."""
        self.path = path
        self.offset = 0
        self.final = final
        self.last_seq: int | None = None  # of the last record read
        self.skipped: list[Skip] = []
        self.reported = 0  # how many of `skipped` the owner has reported
        #: With `final`: the last read reached the end of the journal and found nothing more.
        self.exhausted = False
        self._handle: Any = None
        self._unparsed = b""
        self._need = 0  # a frame this long is waited for: read at least that much
        self._suspect = -1  # offset of damage seen once, confirmed by the next read
        self._layouts: dict[int, list[str]] | None = {} if blocks else None

    def _open(self) -> bool:
        if self._handle is None:
            try:
                # Unbuffered: bytes read again (a frame cut back and rewritten) must come from the file.
                self._handle = open(self.path, "rb", buffering=0)  # noqa: SIM115 - kept open while tailing
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

        Bytes read but not parsed yet (past `limit`) are kept, so a long backlog is read once,
        not once per batch.
        """
        if not self._open():
            return [], 0
        handle = self._handle
        at_eof = False
        want = max(_READ_CHUNK, self._need)
        if len(self._unparsed) < want:
            handle.seek(self.offset + len(self._unparsed))
            more = handle.read(want - len(self._unparsed))
            at_eof = len(more) < want - len(self._unparsed)
            if more:
                self._unparsed = self._unparsed + more if self._unparsed else more
        parse = _Parse(
            self._unparsed,
            self.offset,
            self.last_seq,
            self._layouts,
            final=self.final and at_eof,
            confirmed=self.final,
            suspect=self._suspect,
        )
        records = parse.run(limit)
        self.last_seq = parse.last_seq
        self.skipped.extend(parse.skips)
        if parse.suspect >= 0:
            self._suspect = parse.suspect
        used = parse.pos
        left = len(self._unparsed) - used
        self.offset += used
        self._need = parse.need
        # A parse that stopped early (a frame not complete yet, damage to look at again) reads
        # those bytes from the disk next time: a torn write may have been cut back and rewritten.
        self._unparsed = b"" if parse.stopped else self._unparsed[used:]
        self.exhausted = self.final and at_eof and not records and not parse.need
        return records, left

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class _Parse:
    """One pass over bytes read from a journal: good records, damage read past, where it stopped.

    Given `layouts` (filled from the ROW_SCHEMA records read), runs of float rows of a known layout
    are returned as ROW_BLOCK records instead of one record per row. With `final`, the data ends
    where the journal ends for good, so a frame that does not complete is damage. Damage is read
    past only when `confirmed`, or when it is at `suspect` (seen by the previous read already);
    otherwise the parse stops before it and sets `suspect`.
    """

    def __init__(
        self,
        data: bytes,
        base: int,
        last_seq: int | None,
        layouts: dict[int, list[str]] | None,
        *,
        final: bool,
        confirmed: bool,
        suspect: int = -1,
    ) -> None:
        self.data = data
        self.base = base  # file offset of data[0]
        self.last_seq = last_seq
        self.layouts = layouts
        self.final = final
        self.confirmed = confirmed
        self.suspect = suspect
        self.pos = 0
        self.need = 0
        self.stopped = False
        self.skips: list[Skip] = []

    def run(self, limit: int) -> list[list[Any]]:
        data = self.data
        layouts = self.layouts
        records: list[list[Any]] = []
        taken = 0
        pos = self.pos
        size = len(data)
        while pos + 8 <= size and taken < limit:
            length, crc = FRAME.unpack_from(data, pos)
            end = pos + 8 + length
            if 0 < length <= MAX_RECORD and end > size and not self.final:
                self.need = 8 + length  # not complete yet (or not all read): wait for it
                self.stopped = True
                break
            if 0 < length <= MAX_RECORD and end <= size:
                if layouts is not None and data[pos + 8] == ROW_MARK and length >= ROW_HEAD.size:
                    keys = layouts.get(_LAYOUT.unpack_from(data, pos + 9)[0])
                    if keys is not None and length == ROW_HEAD.size + 8 * len(keys):
                        block, rows, after = _float_block(data, pos, length, keys, limit - taken)
                        if block is not None:
                            records.append(block)
                            taken += rows
                            pos = after
                            continue
                record = _decode(data, pos, length, crc, layouts)
                if record is not None:
                    records.append(record)
                    taken += 1
                    pos = end
                    continue
            # Damage: a bad length, checksum or body. Read past it to the next good frame.
            if records:
                self.last_seq = int(records[-1][0])
            if not self._skip(pos):
                break
            pos = self.pos
        if pos < size and pos + 8 > size and taken < limit:
            self.stopped = True  # part of a header: read it again with what follows
        self.pos = pos
        if records:
            self.last_seq = int(records[-1][0])
        return records

    def _skip(self, pos: int) -> bool:
        """Move `pos` to the next good frame after damage at `pos`; False (stopped) if not now."""
        self.pos = pos
        found, seq = _next_frame(self.data, pos, self.last_seq)
        if found < 0:
            self.stopped = True  # a torn tail (final), or the next good frame is not written yet
            return False
        offset = self.base + pos
        if not (self.confirmed or offset == self.suspect):
            self.suspect = offset
            self.stopped = True
            return False
        first = (self.last_seq or 0) + 1
        self.skips.append(Skip(offset, found - pos, first, seq - 1))
        self.pos = found
        return True


def _decode(data: bytes, pos: int, length: int, crc: int, layouts: dict[int, list[str]] | None) -> list[Any] | None:
    """The record of the whole frame at `pos`, or None if its checksum or body is bad."""
    body = data[pos + 8 : pos + 8 + length]
    if zlib.crc32(body) != crc:
        return None
    if body[:1] == _ROW_MARK_BYTE:
        if length < ROW_HEAD.size or (length - ROW_HEAD.size) % 8:
            return None
        _, layout, seq, step, ts, runtime = ROW_HEAD.unpack_from(body)
        return [seq, _FLOAT_ROW, step, ts, runtime, layout, body[ROW_HEAD.size :]]
    try:
        record = msgpack.unpackb(body, strict_map_key=False)
    except Exception:
        return None
    if type(record) is not list or len(record) < 2:
        return None
    if layouts is not None and len(record) > 3 and record[1] == RecordKind.ROW_SCHEMA:
        layouts[int(record[2])] = [str(k) for k in record[3]]
    return record


def _next_frame(data: bytes, bad: int, last_seq: int | None) -> tuple[int, int]:
    """The offset and sequence number of the first good frame after damage at `bad`, or (-1, 0).

    Good: its length fits, its checksum holds, its body decodes, and its sequence number follows
    the last record read, with at most as many records missing as the skipped bytes could hold
    (so a frame that happens to sit inside a logged bytes value is not taken for one).
    """
    size = len(data)
    unpack = FRAME.unpack_from
    crc32 = zlib.crc32
    view = memoryview(data)
    pos = bad + 1
    while pos + 8 < size:
        length, crc = unpack(data, pos)
        end = pos + 8 + length
        if 0 < length <= MAX_RECORD and end <= size and crc32(view[pos + 8 : end]) == crc:
            record = _decode(data, pos, length, crc, None)
            if record is not None and type(record[0]) is int:
                seq = record[0]
                if last_seq is None or last_seq < seq <= last_seq + 1 + (pos - bad) // _MIN_FRAME:
                    return pos, seq
        pos += 1
    return -1, 0


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
    block = _ROW_BLOCK.build(
        int(frames["seq"][-1]),
        list(keys),
        frames["seq"].tobytes(),
        frames["step"].tobytes(),
        frames["ts"].tobytes(),
        frames["runtime"].tobytes(),
        values,
    )
    return block, count, pos + count * stride


def read_journal(path: Path) -> ReadResult:
    """Every good record of a journal, the damage read past, and the bytes of torn tail after them."""
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        if len(data) < len(MAGIC) and MAGIC.startswith(data):
            return ReadResult([], len(data), 0)
        raise ValueError(f"{path} is not a branchline journal (bad header).")
    parse = _Parse(data[len(MAGIC) :], len(MAGIC), None, None, final=True, confirmed=True)
    records = parse.run(limit=2**62)
    end = len(MAGIC) + parse.pos
    return ReadResult(records, end, len(data) - end, parse.skips)


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
        return _ROW_BLOCK.build(
            rows[-1][0],
            keys,
            array("q", [r[0] for r in rows]).tobytes(),
            array("q", [r[2] for r in rows]).tobytes(),
            array("d", [r[3] for r in rows]).tobytes(),
            array("d", [r[4] for r in rows]).tobytes(),
            b"".join(r[6] for r in rows),
        )
