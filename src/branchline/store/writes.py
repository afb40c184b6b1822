"""The write path: starting runs (new, resume, fork, rewind) and applying journal records."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Table, and_, func, select, update
from sqlalchemy.engine import Row

from branchline.errors import RunNotFoundError, StoreError, UsageError
from branchline.runspec import RunSpec, RunStart
from branchline.store import history as hist
from branchline.store.lineage import derive_summary, segments_for
from branchline.store.schema import (
    alerts,
    console_lines,
    history_chunks,
    history_values,
    incarnations,
    projects,
    run_files,
    runs,
    writer_sessions,
)
from branchline.summaries import MetricDef, SummaryState
from branchline.vocab import RecordKind, RunState, random_run_name

__all__ = [
    "begin_run",
    "apply_records",
    "heartbeat",
    "reap_stale",
    "stale_incarnations",
    "ensure_project",
    "upsert",
    "pid_alive",
]

Record = Sequence[Any]


def dialect_insert(conn: Connection) -> Any:
    """The dialect's INSERT (with ON CONFLICT), imported on use: SQLite users never load PostgreSQL's."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def upsert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows, replacing those whose primary key exists (SQLite and PostgreSQL)."""
    if not rows:
        return
    keys = [c.name for c in table.primary_key.columns]
    stmt = dialect_insert(conn)(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=keys,
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys},
    )
    # Keep statements bounded: SQLite limits the number of bound parameters per statement.
    per = max(1, 30000 // max(1, len(table.columns)))
    for offset in range(0, len(rows), per):
        conn.execute(stmt, rows[offset : offset + per])


def ensure_project(conn: Connection, entity: str, project: str, now: float) -> int:
    found = conn.execute(select(projects.c.id).where(projects.c.entity == entity, projects.c.name == project)).scalar()
    if found is not None:
        return int(found)
    insert = dialect_insert(conn)
    conn.execute(
        insert(projects).values(entity=entity, name=project, created_at=now, public=False).on_conflict_do_nothing()
    )
    return int(
        conn.execute(select(projects.c.id).where(projects.c.entity == entity, projects.c.name == project)).scalar_one()
    )


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_alive(inc: Any, now: float, timeout: float) -> bool:
    """Whether an incarnation marked running still has a live writer."""
    if inc.state not in (RunState.RUNNING, RunState.PREEMPTING):
        return False
    if inc.host == socket.gethostname() and inc.pid:
        return pid_alive(inc.pid)
    return bool(now - inc.heartbeat_at < timeout)


def _find_run(conn: Connection, project_id: int, run_id: str) -> Row[Any] | None:
    return conn.execute(select(runs).where(runs.c.project_id == project_id, runs.c.run_id == run_id)).first()


def _incarnation(conn: Connection, incarnation_id: str) -> Row[Any]:
    row = conn.execute(select(incarnations).where(incarnations.c.id == incarnation_id)).first()
    if row is None:
        raise StoreError(f"Incarnation {incarnation_id} is missing from the store.")
    return row


def _new_incarnation_row(spec: RunSpec, now: float, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": spec.incarnation_id,
        "ordinal": 1,
        "parent_id": None,
        "parent_step": None,
        "branch_kind": None,
        "archived": False,
        "state": RunState.RUNNING.value,
        "created_at": now,
        "started_at": spec.started_at or now,
        "heartbeat_at": now,
        "pid": spec.pid,
        "host": spec.host,
        "starting_step": 0,
        "last_step": -1,
        "runtime": 0.0,
        "config": spec.config,
        "summary": {},
        "metrics": {},
        "run_metadata": spec.metadata,
    }
    row.update(fields)
    return row


def _create_run(conn: Connection, spec: RunSpec, project_id: int, now: float) -> int:
    count = conn.execute(select(func.count()).select_from(runs).where(runs.c.project_id == project_id)).scalar_one()
    result = conn.execute(
        runs.insert().values(
            project_id=project_id,
            run_id=spec.run_id,
            current_incarnation=spec.incarnation_id,
            name=spec.name or random_run_name(int(count) + 1),
            notes=spec.notes or "",
            tags=list(spec.tags or []),
            run_group=spec.group or "",
            job_type=spec.job_type or "",
            host=spec.host,
            username=spec.username,
            created_at=now,
            updated_at=now,
            stop_requested=False,
        )
    )
    pk = result.inserted_primary_key
    assert pk is not None
    return int(pk[0])


def forked_from_info(conn: Connection, inc: Row[Any]) -> dict[str, Any] | None:
    """Where an incarnation branched from, as `run.forked_from` reports it."""
    if inc.parent_id is None:
        return None
    parent = _incarnation(conn, inc.parent_id)
    path = parent.detached_path
    run_id = path.rsplit("/", 1)[-1] if path else None
    if parent.run_pk is not None:
        row = conn.execute(
            select(runs.c.run_id, projects.c.entity, projects.c.name)
            .join(projects, projects.c.id == runs.c.project_id)
            .where(runs.c.pk == parent.run_pk)
        ).first()
        if row is not None:
            run_id, path = row.run_id, f"{row.entity}/{row.name}/{row.run_id}"
    return {
        "run_id": run_id,
        "path": path,
        "step": inc.parent_step,
        "kind": inc.branch_kind,
        "incarnation_id": parent.id,
        "archived": bool(parent.archived),
        "deleted": parent.run_pk is None,
    }


def _start_for(conn: Connection, spec: RunSpec, inc_id: str, resumed: bool, warnings: list[str]) -> RunStart:
    inc = _incarnation(conn, inc_id)
    run = conn.execute(
        select(runs, projects.c.entity, projects.c.name.label("project"))
        .join(projects, projects.c.id == runs.c.project_id)
        .where(runs.c.pk == inc.run_pk)
    ).one()
    return RunStart(
        entity=run.entity,
        project=run.project,
        run_id=run.run_id,
        incarnation_id=inc.id,
        name=run.name,
        notes=run.notes,
        tags=list(run.tags),
        group=run.run_group,
        job_type=run.job_type,
        config=dict(inc.config),
        summary=dict(inc.summary),
        rules=dict(inc.metrics),
        starting_step=int(inc.last_step) + 1 if resumed else int(inc.starting_step),
        runtime_offset=float(inc.runtime) if resumed else 0.0,
        resumed=resumed,
        forked_from=forked_from_info(conn, inc),
        warnings=warnings,
    )


def _ensure_session(conn: Connection, spec: RunSpec, inc_id: str, now: float) -> None:
    exists = conn.execute(select(writer_sessions.c.id).where(writer_sessions.c.id == spec.session_id)).first()
    if exists is None:
        conn.execute(
            writer_sessions.insert().values(id=spec.session_id, incarnation_id=inc_id, applied_seq=0, started_at=now)
        )


def begin_run(conn: Connection, spec: RunSpec, *, now: float, crash_timeout: float) -> RunStart:
    """Create, resume, fork or rewind a run as `spec` asks; idempotent on its incarnation id."""
    session = conn.execute(
        select(writer_sessions.c.incarnation_id).where(writer_sessions.c.id == spec.session_id)
    ).first()
    if session is not None:  # a replayed header: the run was started already
        return _start_for(conn, spec, session.incarnation_id, resumed=spec.resume is not None, warnings=[])
    where = f"{spec.entity}/{spec.project}"
    project_id = ensure_project(conn, spec.entity, spec.project, now)
    existing = _find_run(conn, project_id, spec.run_id)
    warnings: list[str] = []

    if spec.fork_from is not None:
        source = _find_run(conn, project_id, spec.fork_from)
        if source is None:
            raise RunNotFoundError(f"fork_from: no run {spec.fork_from!r} in project {where}.")
        if existing is not None:
            raise UsageError(f"Run {spec.run_id!r} already exists in {where}; a fork needs a new id.")
        src = _incarnation(conn, source.current_incarnation)
        step = int(spec.branch_step or 0)
        if step > src.last_step:
            warnings.append(
                f"fork_from step {step} is past the last step ({src.last_step}) of run "
                f"{spec.fork_from!r}; the fork inherits its whole history."
            )
        segments = segments_for(conn, src.id, step)
        derived = derive_summary(conn, segments, dict(src.metrics))
        pk = _create_run(conn, spec, project_id, now)
        conn.execute(
            incarnations.insert().values(
                **_new_incarnation_row(
                    spec,
                    now,
                    run_pk=pk,
                    parent_id=src.id,
                    parent_step=step,
                    branch_kind="fork",
                    starting_step=step + 1,
                    last_step=step,
                    config={**dict(src.config), **spec.config},
                    summary=derived.summary,
                    metrics=derived.rules_json(),
                )
            )
        )
    elif spec.resume_from is not None:
        if existing is None:
            raise RunNotFoundError(f"resume_from: no run {spec.resume_from!r} in project {where}.")
        cur = _incarnation(conn, existing.current_incarnation)
        if is_alive(cur, now, crash_timeout):
            raise UsageError(
                f"Run {spec.run_id!r} is still running (pid {cur.pid} on {cur.host or 'unknown host'}); "
                "finish it, or wait until it has crashed, before rewinding it."
            )
        step = int(spec.branch_step or 0)
        if step > cur.last_step:
            warnings.append(
                f"resume_from step {step} is past the last step ({cur.last_step}) of run "
                f"{spec.run_id!r}; the whole history is kept."
            )
        segments = segments_for(conn, cur.id, step)
        derived = derive_summary(conn, segments, dict(cur.metrics))
        conn.execute(update(incarnations).where(incarnations.c.id == cur.id).values(archived=True, archived_at=now))
        conn.execute(
            incarnations.insert().values(
                **_new_incarnation_row(
                    spec,
                    now,
                    run_pk=existing.pk,
                    ordinal=int(cur.ordinal) + 1,
                    parent_id=cur.id,
                    parent_step=step,
                    branch_kind="rewind",
                    starting_step=step + 1,
                    last_step=step,
                    config={**dict(cur.config), **spec.config},
                    summary=derived.summary,
                    metrics=derived.rules_json(),
                    run_metadata=spec.metadata or dict(cur.run_metadata),
                )
            )
        )
        _update_run_fields(conn, existing.pk, spec, now, current_incarnation=spec.incarnation_id)
    elif existing is not None:
        if spec.resume in (None, "never"):
            hint = (
                "Pass resume='allow' (or 'must') to continue it, "
                f"resume_from='{spec.run_id}?_step=N' to rewind it, or choose another id."
            )
            if spec.resume == "never":
                raise UsageError(f"resume='never' but run {spec.run_id!r} already exists in {where}. {hint}")
            raise UsageError(f"Run {spec.run_id!r} already exists in {where}. {hint}")
        cur = _incarnation(conn, existing.current_incarnation)
        if is_alive(cur, now, crash_timeout):
            raise UsageError(
                f"Run {spec.run_id!r} is still running (pid {cur.pid}); it cannot be resumed twice at once."
            )
        conn.execute(
            update(incarnations)
            .where(incarnations.c.id == cur.id)
            .values(
                state=RunState.RUNNING.value,
                exit_code=None,
                finished_at=None,
                heartbeat_at=now,
                pid=spec.pid,
                host=spec.host,
                config={**dict(cur.config), **spec.config},
            )
        )
        _update_run_fields(conn, existing.pk, spec, now)
        _ensure_session(conn, spec, cur.id, now)
        return _start_for(conn, spec, cur.id, resumed=True, warnings=warnings)
    else:
        if spec.resume == "must":
            raise UsageError(
                f"resume='must' but no run {spec.run_id!r} exists in {where}; "
                "use resume='allow' to create it when missing."
            )
        pk = _create_run(conn, spec, project_id, now)
        conn.execute(incarnations.insert().values(**_new_incarnation_row(spec, now, run_pk=pk)))
    _ensure_session(conn, spec, spec.incarnation_id, now)
    return _start_for(conn, spec, spec.incarnation_id, resumed=False, warnings=warnings)


def _update_run_fields(conn: Connection, pk: int, spec: RunSpec, now: float, **extra: Any) -> None:
    values: dict[str, Any] = {"updated_at": now, **extra}
    if spec.name is not None:
        values["name"] = spec.name
    if spec.notes is not None:
        values["notes"] = spec.notes
    if spec.tags is not None:
        values["tags"] = list(spec.tags)
    if spec.group is not None:
        values["run_group"] = spec.group
    if spec.job_type is not None:
        values["job_type"] = spec.job_type
    conn.execute(update(runs).where(runs.c.pk == pk).values(**values))


# -- applying records ------------------------------------------------------------------------


class _Columns:
    """Numeric points and other values of one batch, by stream and flattened key."""

    def __init__(self) -> None:
        self.numeric: dict[tuple[int, str], tuple[list[int], list[Any]]] = {}
        self.objects: list[dict[str, Any]] = []
        # Rows of plain floats, grouped by their key set: transposed with numpy in one pass.
        self.float_rows: dict[tuple[str, ...], tuple[list[int], list[float], list[float], list[tuple[float, ...]]]] = {}
        self.parts: dict[tuple[int, str], list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]] = {}

    def add_float_row(self, step: int, ts: float, runtime: float, data: dict[str, float]) -> None:
        group = self.float_rows.get(tuple(data))
        if group is None:
            group = self.float_rows[tuple(data)] = ([], [], [], [])
        group[0].append(step)
        group[1].append(ts)
        group[2].append(runtime)
        group[3].append(tuple(data.values()))

    def add_block(
        self,
        keys: list[str],
        steps: npt.NDArray[np.int64],
        stamps: npt.NDArray[np.float64],
        runtimes: npt.NDArray[np.float64],
        matrix: npt.NDArray[np.float64],
    ) -> None:
        columns = [("_timestamp", stamps), ("_runtime", runtimes)]
        columns.extend((key, matrix[:, j]) for j, key in enumerate(keys))
        for key, column in columns:
            self.parts.setdefault((0, key), []).append((steps, column))

    def transpose_float_rows(self) -> None:
        for keys, (steps_list, ts_list, rt_list, values) in self.float_rows.items():
            steps = np.array(steps_list, dtype=np.int64)
            matrix = np.array(values, dtype=np.float64).reshape(len(values), len(keys))
            columns = [("_timestamp", np.array(ts_list)), ("_runtime", np.array(rt_list))]
            columns.extend((key, matrix[:, j]) for j, key in enumerate(keys))
            for key, column in columns:
                self.parts.setdefault((0, key), []).append((steps, column))
        self.float_rows = {}

    def add(self, inc_id: str, stream: int, step: int, row: dict[str, Any], prefix: str = "") -> None:
        # The hot loop of the writer: plain numbers go straight into their column.
        numeric = self.numeric
        for name, value in row.items():
            key = prefix + name
            kind = type(value)
            if kind is float or kind is bool or (kind is int and -(2**63) <= value < 2**63):
                col = numeric.get((stream, key))
                if col is None:
                    col = numeric[(stream, key)] = ([], [])
                col[0].append(step)
                col[1].append(value)
            elif kind is dict and value and not value.get("_type"):
                self.add(inc_id, stream, step, value, key + ".")
            else:
                self.objects.append(
                    {
                        "incarnation_id": inc_id,
                        "stream": stream,
                        "key": key,
                        "step": step,
                        "value": msgpack.packb(value),
                    }
                )


def _column(cols: _Columns, stream: int, key: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any], str]:
    """One key's points of this batch, in step order, with their stored dtype code."""
    parts = list(cols.parts.get((stream, key), ()))
    dtype = "t" if key in hist.TIME_KEYS else "f"
    listed = cols.numeric.get((stream, key))
    if listed is not None:
        dtype = hist.merge_dtypes(dtype, hist.dtype_of(key, listed[1])) if parts else hist.dtype_of(key, listed[1])
        parts.append((np.array(listed[0], dtype=np.int64), hist.to_array(listed[1], "f" if dtype == "t" else dtype)))
    if len(parts) == 1:
        return parts[0][0], parts[0][1], dtype
    steps = np.concatenate([p[0] for p in parts])
    values = np.concatenate([p[1].astype(np.float64) if dtype in ("f", "t") else p[1] for p in parts])
    order = np.argsort(steps, kind="stable")
    return steps[order], values[order], dtype


def _write_numeric(conn: Connection, inc_id: str, cols: _Columns) -> None:
    cols.transpose_float_rows()
    if not cols.numeric and not cols.parts:
        return
    c = history_chunks.c
    by_stream: dict[int, list[str]] = {}
    for stream, key in {**cols.numeric, **cols.parts}:
        by_stream.setdefault(stream, []).append(key)
    rows: list[dict[str, Any]] = []
    for stream, keys in by_stream.items():
        last_chunks: dict[str, int] = {}
        tails: dict[str, Row[Any]] = {}
        for offset in range(0, len(keys), 500):
            part = keys[offset : offset + 500]
            for key, chunk in conn.execute(
                select(c.key, func.max(c.chunk))
                .where(c.incarnation_id == inc_id, c.stream == stream, c.key.in_(part))
                .group_by(c.key)
            ):
                last_chunks[key] = int(chunk)
            wanted = [k for k in part if k in last_chunks]
            if wanted:
                for row in conn.execute(
                    select(history_chunks).where(
                        c.incarnation_id == inc_id,
                        c.stream == stream,
                        c.key.in_(wanted),
                        c.count < hist.CHUNK_SIZE,
                    )
                ):
                    if row.chunk == last_chunks[row.key]:
                        tails[row.key] = row
        for key in keys:
            steps, values, dtype = _column(cols, stream, key)
            start = last_chunks.get(key, -1) + 1
            tail = tails.get(key)
            if tail is not None:
                dtype = hist.merge_dtypes(tail.dtype, dtype)
                # `count` via the mapping: on a Row, `.count` is tuple.count.
                old_steps = hist.decode_steps(tail.steps, tail.first_step, tail._mapping["count"])
                old_values = hist.decode_values(tail.vals, tail.dtype)
                keep = steps > old_steps[-1]  # replayed or out-of-order points never duplicate
                steps = np.concatenate((old_steps, steps[keep]))
                values = np.concatenate((old_values.astype(values.dtype if dtype != "f" else np.float64), values[keep]))
                start = tail.chunk
            if dtype == "f":
                values = values.astype(np.float64)
            for encoded in hist.split_into_chunks(start, steps, values, dtype):
                rows.append({"incarnation_id": inc_id, "stream": stream, "key": key, **encoded})
    upsert(conn, history_chunks, rows)


def apply_records(
    conn: Connection,
    session_id: str,
    records: Sequence[Record],
    *,
    now: float,
) -> int:
    """Apply decoded journal records of one writer session; returns the highest applied sequence.

    Records at or below the session's applied sequence are skipped, so replaying a journal or
    retrying a batch never duplicates anything.
    """
    session = conn.execute(select(writer_sessions).where(writer_sessions.c.id == session_id)).first()
    if session is None:
        raise StoreError(f"Unknown writer session {session_id}; start the run before sending records.")
    applied = int(session.applied_seq)
    todo = [r for r in records if int(r[0]) > applied]
    if not todo:
        return applied
    inc = _incarnation(conn, session.incarnation_id)
    inc_id = inc.id
    state = SummaryState.restore(inc.summary, inc.metrics)
    config = dict(inc.config)
    run_fields: dict[str, Any] = {}
    inc_fields: dict[str, Any] = {}
    cols = _Columns()
    latest: dict[str, Any] = {}  # float rows' values since the last row that needed the full rules
    last_ts: float | None = None
    last_rt = 0.0
    last_step = int(inc.last_step)
    runtime = float(inc.runtime)
    lines: list[dict[str, Any]] = []
    line_no: int | None = None
    files: list[dict[str, Any]] = []
    alert_rows: list[dict[str, Any]] = []
    system_count: int | None = None
    metadata: dict[str, Any] | None = None

    def history_row(step: int, ts: float, rt: float, data: Any) -> None:
        nonlocal latest, last_ts, last_rt, last_step, runtime
        if not state.defs and type(data) is dict and data and _plain_floats(data):
            cols.add_float_row(step, ts, rt, data)
            latest.update(data)
        else:
            if latest:
                state.apply_row(latest)  # keep summary updates in record order
                latest = {}
            row = dict(data)
            row.pop("_step", None)
            extra = state.step_sync_items(row)
            if extra:
                row.update(extra)
            row["_timestamp"] = row.get("_timestamp", ts)
            row["_runtime"] = rt
            cols.add(inc_id, 0, step, row)
            state.apply_row(row)
            ts = row["_timestamp"]
        last_ts, last_rt = ts, rt
        last_step = max(last_step, step)
        runtime = max(runtime, float(rt))

    for record in todo:
        kind = int(record[1])
        if latest and kind not in _ROW_KINDS:
            state.apply_row(latest)  # summary edits and rules apply after the rows before them
            latest = {}
        if kind == RecordKind.HISTORY:
            _, _, step, ts, rt, data = record
            history_row(int(step), ts, rt, data)
        elif kind == RecordKind.ROW_BLOCK:
            block = _decode_block(record, applied)
            if block is None:
                continue
            keys, steps, stamps, runtimes, matrix = block
            if state.defs:  # define_metric rules need every row on its own
                for i in range(len(steps)):
                    row = dict(zip(keys, matrix[i].tolist(), strict=True))
                    history_row(int(steps[i]), float(stamps[i]), float(runtimes[i]), row)
                continue
            cols.add_block(keys, steps, stamps, runtimes, matrix)
            latest.update(zip(keys, matrix[-1].tolist(), strict=True))
            last_ts, last_rt = float(stamps[-1]), float(runtimes[-1])
            last_step = max(last_step, int(steps[-1]))
            runtime = max(runtime, float(runtimes.max()))
        elif kind == RecordKind.ROW_SCHEMA:
            continue  # the writer already turned float rows into blocks with these keys
        elif kind == RecordKind.SUMMARY:
            _, _, sets, removes = record
            for path, value in sets:
                state.set_explicit(tuple(path), value)
            for path in removes:
                state.remove(tuple(path))
        elif kind == RecordKind.CONFIG:
            config.update(record[2])
        elif kind == RecordKind.METRIC:
            state.define(MetricDef.from_json(record[2]), overwrite=bool(record[3]))
        elif kind == RecordKind.META:
            fields = dict(record[2])
            for name, column in (
                ("name", "name"),
                ("notes", "notes"),
                ("tags", "tags"),
                ("group", "run_group"),
                ("job_type", "job_type"),
            ):
                if name in fields:
                    run_fields[column] = fields[name]
        elif kind == RecordKind.EXIT:
            _, _, exit_code, final_state, rt = record
            inc_fields.update(exit_code=int(exit_code), state=str(final_state), finished_at=now)
            runtime = max(runtime, float(rt))
        elif kind == RecordKind.PREEMPTING:
            inc_fields["state"] = RunState.PREEMPTING.value
        elif kind == RecordKind.OUTPUT:
            if line_no is None:
                line_no = int(
                    conn.execute(
                        select(func.coalesce(func.max(console_lines.c.line_no), -1)).where(
                            console_lines.c.incarnation_id == inc_id
                        )
                    ).scalar_one()
                )
            for stream_name, ts, text in record[2]:
                line_no += 1
                lines.append(
                    {"incarnation_id": inc_id, "line_no": line_no, "stream": stream_name, "ts": ts, "text": text}
                )
        elif kind == RecordKind.SYSTEM:
            _, _, ts, rt, sample = record
            if system_count is None:
                system_count = int(
                    conn.execute(
                        select(func.coalesce(func.max(history_chunks.c.last_step), -1)).where(
                            history_chunks.c.incarnation_id == inc_id,
                            history_chunks.c.stream == 1,
                            history_chunks.c.key == "_timestamp",
                        )
                    ).scalar_one()
                )
            system_count += 1
            cols.add(inc_id, 1, system_count, {**sample, "_timestamp": ts, "_runtime": rt})
        elif kind == RecordKind.FILE:
            _, _, path, size, sha256, ts = record
            files.append({"incarnation_id": inc_id, "path": path, "size": size, "sha256": sha256, "updated_at": ts})
        elif kind == RecordKind.ALERT:
            _, _, title, text, level, ts = record
            alert_rows.append({"incarnation_id": inc_id, "title": title, "text": text, "level": level, "ts": ts})
        elif kind == RecordKind.METADATA:
            # Collected in the background after the run started: merged over what begin_run stored.
            if metadata is None:
                metadata = dict(inc.run_metadata or {})
            metadata.update(record[2])
        elif kind == RecordKind.HEADER:
            continue
        else:
            raise StoreError(f"Unknown journal record kind {kind}.")

    if latest:
        state.apply_row(latest)
    if last_ts is not None:
        state.summary["_step"] = last_step
        state.summary["_runtime"] = last_rt
        state.summary["_timestamp"] = last_ts
    _write_numeric(conn, inc_id, cols)
    upsert(conn, history_values, cols.objects)
    upsert(conn, console_lines, lines)
    upsert(conn, run_files, files)
    if alert_rows:
        conn.execute(alerts.insert(), alert_rows)
    if "state" not in inc_fields and inc.state == RunState.CRASHED and _writer_process_alive(inc):
        # A crashed run that sends data again is alive, unless this is the writer draining the
        # journal of a training process that is gone.
        inc_fields["state"] = RunState.RUNNING.value
    if metadata is not None:
        inc_fields["run_metadata"] = metadata
    conn.execute(
        update(incarnations)
        .where(incarnations.c.id == inc_id)
        .values(
            summary=state.summary,
            metrics=state.rules_json(),
            config=config,
            last_step=last_step,
            runtime=runtime,
            heartbeat_at=now,
            **inc_fields,
        )
    )
    if run_fields and inc.run_pk is not None:
        conn.execute(update(runs).where(runs.c.pk == inc.run_pk).values(updated_at=now, **run_fields))
    highest = int(todo[-1][0])
    conn.execute(update(writer_sessions).where(writer_sessions.c.id == session_id).values(applied_seq=highest))
    return highest


def resumed_since(conn: Connection, incarnation_id: str, session_id: str) -> bool:
    """Whether a writer session started on the incarnation after `session_id` did."""
    ws = writer_sessions.c
    started = select(ws.started_at).where(ws.id == session_id).scalar_subquery()
    later = select(ws.id).where(ws.incarnation_id == incarnation_id, ws.id != session_id, ws.started_at > started)
    return conn.execute(later.limit(1)).first() is not None


def _writer_process_alive(inc: Row[Any]) -> bool:
    if inc.host == socket.gethostname() and inc.pid:
        return pid_alive(inc.pid)
    return True


_ROW_KINDS = frozenset({RecordKind.HISTORY, RecordKind.ROW_BLOCK, RecordKind.ROW_SCHEMA})


def _decode_block(
    record: Sequence[Any], applied: int
) -> (
    tuple[list[str], npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]
    | None
):
    """A ROW_BLOCK's columns, without the rows at or below the applied sequence (a replay)."""
    _, _, keys, seqs_b, steps_b, stamps_b, runtimes_b, values_b = record
    seqs = np.frombuffer(seqs_b, dtype="<i8")
    keep = seqs > applied
    if not keep.any():
        return None
    steps = np.frombuffer(steps_b, dtype="<i8")[keep]
    stamps = np.frombuffer(stamps_b, dtype="<f8")[keep]
    runtimes = np.frombuffer(runtimes_b, dtype="<f8")[keep]
    matrix = np.frombuffer(values_b, dtype="<f8").reshape(len(seqs), len(keys))[keep]
    return list(keys), steps, stamps, runtimes, matrix


def _plain_floats(data: dict[str, Any]) -> bool:
    """A flat row of floats with no special keys: the writer's fast path."""
    return set(map(type, data.values())) == _FLOAT_ONLY and not (_SPECIAL_KEYS & data.keys())


_FLOAT_ONLY = {float}
_SPECIAL_KEYS = frozenset({"_step", "_timestamp", "_runtime"})


def heartbeat(conn: Connection, incarnation_id: str, now: float) -> bool:
    """Record that the run is alive; returns whether a stop was requested."""
    inc = _incarnation(conn, incarnation_id)
    values: dict[str, Any] = {"heartbeat_at": now}
    if inc.state == RunState.CRASHED and _writer_process_alive(inc):
        values["state"] = RunState.RUNNING.value
    conn.execute(update(incarnations).where(incarnations.c.id == incarnation_id).values(**values))
    if inc.run_pk is None:
        return False
    return bool(conn.execute(select(runs.c.stop_requested).where(runs.c.pk == inc.run_pk)).scalar())


def stale_incarnations(conn: Connection, now: float, timeout: float) -> list[Any]:
    """Incarnations marked running (or preempting) whose writer is gone."""
    c = incarnations.c
    live = conn.execute(
        select(c.id, c.state, c.pid, c.host, c.heartbeat_at).where(
            c.state.in_([RunState.RUNNING.value, RunState.PREEMPTING.value])
        )
    ).all()
    return [row for row in live if not is_alive(row, now, timeout)]


def reap_stale(conn: Connection, now: float, timeout: float) -> int:
    """Mark running incarnations whose writer is gone as crashed (preempting ones as preempted)."""
    dead = stale_incarnations(conn, now, timeout)
    for row in dead:
        new_state = RunState.PREEMPTED if row.state == RunState.PREEMPTING else RunState.CRASHED
        conn.execute(
            update(incarnations)
            .where(and_(incarnations.c.id == row.id, incarnations.c.state == row.state))
            .values(state=new_state.value)
        )
    return len(dead)
