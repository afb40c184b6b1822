"""Applying journal records to the store: one short handler per record kind, in a dispatch table.

The handlers take a record's fields as declared in records.py (`SPECS[kind].names`, in order; a
test holds them to it) and build one `_Batch`, which is written at the end in a few statements.
Records at or below the session's applied sequence are skipped, so a replay never duplicates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import DataError, DBAPIError, StatementError

from branchline.errors import RunNotFoundError, StoreError
from branchline.records import RecordError
from branchline.store.columns import Columns, write_numeric
from branchline.store.liveness import incarnation_row, writer_process_alive
from branchline.store.schema import (
    alerts,
    console_lines,
    history_chunks,
    history_values,
    incarnations,
    run_files,
    runs,
    writer_sessions,
)
from branchline.store.sql import upsert
from branchline.summaries import MetricDef, SummaryState
from branchline.vocab import RecordKind, RunState

__all__ = ["HANDLERS", "apply_records", "record_at_fault", "skip_records"]

Record = Sequence[Any]
_SPECIAL_KEYS = frozenset({"_step", "_timestamp", "_runtime"})
_META_COLUMNS = (
    ("name", "name"),
    ("notes", "notes"),
    ("tags", "tags"),
    ("group", "run_group"),
    ("job_type", "job_type"),
)


class _Batch:
    """What one batch of records changes, gathered before it is written."""

    def __init__(self, conn: Connection, inc: Any, applied: int, now: float) -> None:
        self.conn = conn
        self.inc = inc
        self.inc_id: str = inc.id
        self.applied = applied
        self.now = now
        self.state = SummaryState.restore(inc.summary, inc.metrics)
        self.config = dict(inc.config)
        self.run_fields: dict[str, Any] = {}
        self.inc_fields: dict[str, Any] = {}
        self.cols = Columns()
        self.latest: dict[str, Any] = {}  # float rows' values since the last row that needed the full rules
        self.last_ts: float | None = None
        self.last_rt = 0.0
        self.last_step = int(inc.last_step)
        self.runtime = float(inc.runtime)
        self.exited = False
        self.lines: list[dict[str, Any]] = []
        self.line_no: int | None = None
        self.files: list[dict[str, Any]] = []
        self.alert_rows: list[dict[str, Any]] = []
        self.system_count: int | None = None
        self.metadata: dict[str, Any] | None = None

    def fold_latest(self) -> None:
        """Summary edits and rules apply after the float rows before them."""
        if self.latest:
            self.state.apply_row(self.latest)
            self.latest = {}

    def moved(self, step: int, ts: float, rt: float) -> None:
        self.last_ts, self.last_rt = ts, rt
        self.last_step = max(self.last_step, step)
        self.runtime = max(self.runtime, float(rt))

    def history_row(self, step: int, ts: float, rt: float, data: Any) -> None:
        if not self.state.defs and type(data) is dict and data and _plain_floats(data):
            self.cols.add_float_row(step, ts, rt, data)
            self.latest.update(data)
        else:
            self.fold_latest()  # keep summary updates in record order
            row = dict(data)
            row.pop("_step", None)
            extra = self.state.step_sync_items(row)
            if extra:
                row.update(extra)
            row["_timestamp"] = row.get("_timestamp", ts)
            row["_runtime"] = rt
            self.cols.add(self.inc_id, 0, step, row)
            self.state.apply_row(row)
            ts = row["_timestamp"]
        self.moved(step, ts, rt)

    def scalar(self, stmt: Any) -> int:
        return int(self.conn.execute(stmt).scalar_one())

    def write(self, highest: int, session_id: str) -> None:
        self.fold_latest()
        state = self.state
        if self.last_ts is not None:
            state.summary["_step"] = self.last_step
            state.summary["_runtime"] = self.last_rt
            state.summary["_timestamp"] = self.last_ts
        if self.exited:  # the summary's `_runtime` ends as the run's Runtime, as wandb rewrites it at exit
            state.summary["_runtime"] = self.runtime
        conn = self.conn
        write_numeric(conn, self.inc_id, self.cols)
        upsert(conn, history_values, self.cols.objects)
        upsert(conn, console_lines, self.lines)
        upsert(conn, run_files, self.files)
        if self.alert_rows:
            conn.execute(alerts.insert(), self.alert_rows)
        fields = self.inc_fields
        if "state" not in fields and self.inc.state == RunState.CRASHED and writer_process_alive(self.inc):
            # A crashed run that sends data again is alive, unless this is the writer draining the
            # journal of a training process that is gone.
            fields["state"] = RunState.RUNNING.value
        if self.metadata is not None:
            fields["run_metadata"] = self.metadata
        conn.execute(
            update(incarnations)
            .where(incarnations.c.id == self.inc_id)
            .values(
                summary=state.summary,
                metrics=state.rules_json(),
                config=self.config,
                last_step=self.last_step,
                runtime=self.runtime,
                heartbeat_at=self.now,
                **fields,
            )
        )
        if self.run_fields and self.inc.run_pk is not None:
            conn.execute(
                update(runs).where(runs.c.pk == self.inc.run_pk).values(updated_at=self.now, **self.run_fields)
            )
        conn.execute(update(writer_sessions).where(writer_sessions.c.id == session_id).values(applied_seq=highest))


# -- one handler per record kind: fields as declared in records.py ----------------------------------
def _history(b: _Batch, step: int, timestamp: float, runtime: float, data: Any) -> None:
    b.history_row(int(step), timestamp, runtime, data)


def _row_block(
    b: _Batch, keys: list[str], sequences: bytes, steps: bytes, timestamps: bytes, runtimes: bytes, values: bytes
) -> None:
    seqs = np.frombuffer(sequences, dtype="<i8")
    keep = seqs > b.applied  # rows at or below the applied sequence are a replay
    if not keep.any():
        return
    step_col: npt.NDArray[np.int64] = np.frombuffer(steps, dtype="<i8")[keep]
    stamps: npt.NDArray[np.float64] = np.frombuffer(timestamps, dtype="<f8")[keep]
    rts: npt.NDArray[np.float64] = np.frombuffer(runtimes, dtype="<f8")[keep]
    matrix: npt.NDArray[np.float64] = np.frombuffer(values, dtype="<f8").reshape(len(seqs), len(keys))[keep]
    if b.state.defs:  # define_metric rules need every row on its own
        for i in range(len(step_col)):
            row = dict(zip(keys, matrix[i].tolist(), strict=True))
            b.history_row(int(step_col[i]), float(stamps[i]), float(rts[i]), row)
        return
    b.cols.add_block(list(keys), step_col, stamps, rts, matrix)
    b.latest.update(zip(keys, matrix[-1].tolist(), strict=True))
    b.last_ts, b.last_rt = float(stamps[-1]), float(rts[-1])
    b.last_step = max(b.last_step, int(step_col[-1]))
    b.runtime = max(b.runtime, float(rts.max()))


def _row_schema(b: _Batch, layout: int, keys: list[str]) -> None:
    """Nothing to store: the writer already turned float rows into blocks with these keys."""


def _summary(b: _Batch, sets: list[Any], removes: list[Any]) -> None:
    for path, value in sets:
        b.state.set_explicit(tuple(path), value)
    for path in removes:
        b.state.remove(tuple(path))


def _config(b: _Batch, values: dict[str, Any]) -> None:
    b.config.update(values)


def _metric(b: _Batch, definition: dict[str, Any], overwrite: Any) -> None:
    b.state.define(MetricDef.from_json(definition), overwrite=bool(overwrite))


def _meta(b: _Batch, values: dict[str, Any]) -> None:
    fields = dict(values)
    for name, column in _META_COLUMNS:
        if name in fields:
            b.run_fields[column] = fields[name]


def _exit(b: _Batch, exit_code: int, state: str, runtime: float) -> None:
    b.inc_fields.update(exit_code=int(exit_code), state=str(state), finished_at=b.now)
    b.runtime = max(b.runtime, float(runtime))
    b.exited = True


def _preempting(b: _Batch) -> None:
    b.inc_fields["state"] = RunState.PREEMPTING.value


def _output(b: _Batch, lines: list[Any]) -> None:
    if b.line_no is None:
        c = console_lines.c
        b.line_no = b.scalar(select(func.coalesce(func.max(c.line_no), -1)).where(c.incarnation_id == b.inc_id))
    for stream, ts, text in lines:
        b.line_no += 1
        b.lines.append({"incarnation_id": b.inc_id, "line_no": b.line_no, "stream": stream, "ts": ts, "text": text})


def _system(b: _Batch, timestamp: float, runtime: float, sample: dict[str, Any]) -> None:
    if b.system_count is None:
        c = history_chunks.c
        last = select(func.coalesce(func.max(c.last_step), -1))
        b.system_count = b.scalar(last.where(c.incarnation_id == b.inc_id, c.stream == 1, c.key == "_timestamp"))
    b.system_count += 1
    b.cols.add(b.inc_id, 1, b.system_count, {**sample, "_timestamp": timestamp, "_runtime": runtime})


def _file(b: _Batch, path: str, size: int, sha256: str, timestamp: float) -> None:
    b.files.append({"incarnation_id": b.inc_id, "path": path, "size": size, "sha256": sha256, "updated_at": timestamp})


def _media(b: _Batch, key: str, step: int, kind: str, payload: dict[str, Any]) -> None:
    # The writer (or `branchline sync`) encodes media into run files and sends FILE records in
    # their place (sdk/media/stage.py); raw media reaching a store is refused, never half-stored.
    raise RecordError("kind", f"the {kind} logged as {key!r} at step {step} was not encoded into a run file")


def _alert(b: _Batch, title: str, text: str, level: str, timestamp: float) -> None:
    b.alert_rows.append({"incarnation_id": b.inc_id, "title": title, "text": text, "level": level, "ts": timestamp})


def _metadata(b: _Batch, values: dict[str, Any]) -> None:
    # Collected in the background after the run started: merged over what begin_run stored.
    if b.metadata is None:
        b.metadata = dict(b.inc.run_metadata or {})
    b.metadata.update(values)


def _header(b: _Batch, spec: dict[str, Any]) -> None:
    """Nothing to store: begin_run created the run from this spec."""


HANDLERS: dict[RecordKind, Callable[..., None]] = {
    RecordKind.HEADER: _header,
    RecordKind.HISTORY: _history,
    RecordKind.SUMMARY: _summary,
    RecordKind.CONFIG: _config,
    RecordKind.METRIC: _metric,
    RecordKind.META: _meta,
    RecordKind.EXIT: _exit,
    RecordKind.PREEMPTING: _preempting,
    RecordKind.OUTPUT: _output,
    RecordKind.SYSTEM: _system,
    RecordKind.FILE: _file,
    RecordKind.ALERT: _alert,
    RecordKind.METADATA: _metadata,
    RecordKind.ROW_SCHEMA: _row_schema,
    RecordKind.ROW_BLOCK: _row_block,
    RecordKind.MEDIA: _media,
}
_ROW_KINDS = frozenset({RecordKind.HISTORY, RecordKind.ROW_BLOCK, RecordKind.ROW_SCHEMA})
_BY_INT: dict[int, Callable[..., None]] = {int(k): h for k, h in HANDLERS.items()}


def _session(conn: Connection, session_id: str) -> Any:
    """The session's row, locked until the transaction ends (PostgreSQL; SQLite writes one at a time).

    Two server replicas can apply overlapping batches of one session at once (a client retried while
    its first request was still being applied); the lock makes the second wait and then see the
    first's applied sequence, so neither regresses it nor stores a row twice.
    """
    query = select(writer_sessions).where(writer_sessions.c.id == session_id).with_for_update()
    session = conn.execute(query).first()
    if session is None:
        raise StoreError(f"Unknown writer session {session_id}; start the run before sending records.")
    return session


def apply_records(conn: Connection, session_id: str, records: Sequence[Record], *, now: float) -> int:
    """Apply decoded journal records of one writer session; returns the highest applied sequence.

    Records at or below the session's applied sequence are skipped, so replaying a journal or
    retrying a batch never duplicates anything.
    """
    session = _session(conn, session_id)
    applied = int(session.applied_seq)
    todo = [r for r in records if int(r[0]) > applied]
    if not todo:
        return applied
    batch = _Batch(conn, incarnation_row(conn, session.incarnation_id), applied, now)
    for record in todo:
        kind = int(record[1])
        if batch.latest and kind not in _ROW_KINDS:
            batch.fold_latest()
        handler = _BY_INT.get(kind)
        if handler is None:
            raise RecordError("kind", f"Unknown journal record kind {kind}.")
        handler(batch, *record[2:])
    highest = int(todo[-1][0])
    batch.write(highest, session_id)
    return highest


def skip_records(conn: Connection, session_id: str, through: int) -> int:
    """Move the session past records that cannot be stored (reported, never retried forever)."""
    applied = int(_session(conn, session_id).applied_seq)
    if through > applied:
        ws = writer_sessions.c
        conn.execute(update(writer_sessions).where(ws.id == session_id).values(applied_seq=through))
    return max(applied, through)


def record_at_fault(exc: BaseException) -> bool:
    """Whether applying failed because of the records themselves (a value no column or JSON field
    can hold), not because of the database (a full disk, a lock, a lost connection): only those
    records are set aside, everything else is retried as it is."""
    if isinstance(exc, DBAPIError):
        return isinstance(exc, DataError)
    if isinstance(exc, StatementError):  # raised while binding parameters, e.g. JSON encoding
        exc = exc.orig if isinstance(exc.orig, BaseException) else exc
    if isinstance(exc, StoreError | RunNotFoundError):
        return False
    return isinstance(exc, TypeError | ValueError | RecursionError | OverflowError | KeyError | IndexError)


def _plain_floats(data: dict[str, Any]) -> bool:
    """A flat row of floats with no special keys: the writer's fast path."""
    return set(map(type, data.values())) == _FLOAT_ONLY and not (_SPECIAL_KEYS & data.keys())


_FLOAT_ONLY = {float}
