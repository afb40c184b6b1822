"""The read path: runs, incarnations, projects, and history that follows the lineage chain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Unpack

import msgpack
import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Select, and_, func, select

from branchline.store import history as hist
from branchline.store.lineage import UNBOUNDED, Segment, segments_for, segments_for_many
from branchline.store.options import StepRange, step_bounds
from branchline.store.schema import (
    alerts,
    console_lines,
    history_chunks,
    history_values,
    incarnations,
    projects,
    run_files,
    runs,
)
from branchline.store.writes import forked_from_info

__all__ = [
    "RunView",
    "run_select",
    "to_view",
    "read_series",
    "read_objects",
    "history_keys",
    "history_keys_many",
    "project_rows",
]


@dataclass
class RunView:
    """A run (its current incarnation) or an archived incarnation, as readers see it."""

    pk: int | None
    entity: str
    project: str
    run_id: str
    incarnation_id: str
    name: str
    notes: str
    tags: list[str]
    group: str
    job_type: str
    host: str
    username: str
    created_at: float
    updated_at: float
    state: str
    exit_code: int | None
    started_at: float
    heartbeat_at: float
    finished_at: float | None
    config: dict[str, Any]
    summary: dict[str, Any]
    rules: dict[str, Any]
    metadata: dict[str, Any]
    starting_step: int
    last_step: int
    #: Runtime: wall-clock seconds from the start to the end (or to now, while running), pauses included.
    runtime: float
    archived: bool
    ordinal: int
    stop_requested: bool
    forked_from: dict[str, Any] | None
    #: Seconds spent paused between a finish (or crash) and a resume.
    paused: float = 0.0
    #: Readable by the members of its entity only, even in a public project.
    private: bool = False
    #: Duration: seconds the run was actively running, pauses excluded (never above `runtime`): the
    #: SDK clock at its last record less the pauses, what the `duration` filter and sort compare.
    duration: float = 0.0

    @property
    def path(self) -> str:
        return f"{self.entity}/{self.project}/{self.run_id}"


_NON_FINITE = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _numbers_back(value: Any) -> Any:
    """Summaries are stored as strict JSON, with non-finite numbers spelled as strings: undo that."""
    if isinstance(value, str):
        return _NON_FINITE.get(value, value)
    if isinstance(value, dict):
        return {k: _numbers_back(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_back(v) for v in value]
    return value


def run_select(current_only: bool = True) -> Select[Any]:
    """Runs joined with an incarnation and their project; filters and orders build on this."""
    join_on = incarnations.c.id == runs.c.current_incarnation if current_only else incarnations.c.run_pk == runs.c.pk
    return (
        select(
            runs.c.pk,
            projects.c.entity,
            projects.c.name.label("project"),
            runs.c.run_id,
            incarnations.c.id.label("incarnation_id"),
            runs.c.name,
            runs.c.notes,
            runs.c.tags,
            runs.c.run_group,
            runs.c.job_type,
            runs.c.host,
            runs.c.username,
            runs.c.created_at,
            runs.c.updated_at,
            runs.c.stop_requested,
            runs.c.private,
            incarnations.c.state,
            incarnations.c.exit_code,
            incarnations.c.started_at,
            incarnations.c.heartbeat_at,
            incarnations.c.finished_at,
            incarnations.c.config,
            incarnations.c.summary,
            incarnations.c.metrics,
            incarnations.c.run_metadata,
            incarnations.c.starting_step,
            incarnations.c.last_step,
            incarnations.c.runtime,
            incarnations.c.paused,
            incarnations.c.archived,
            incarnations.c.ordinal,
            incarnations.c.parent_id,
            incarnations.c.parent_step,
            incarnations.c.branch_kind,
        )
        .select_from(runs)
        .join(projects, projects.c.id == runs.c.project_id)
        .join(incarnations, join_on)
    )


def to_view(conn: Connection, row: Any, *, with_lineage: bool = True) -> RunView:
    forked = None
    if with_lineage and row.parent_id is not None:
        forked = forked_from_info(conn, row)
    return RunView(
        pk=row.pk,
        entity=row.entity,
        project=row.project,
        run_id=row.run_id,
        incarnation_id=row.incarnation_id,
        name=row.name,
        notes=row.notes,
        tags=list(row.tags or []),
        group=row.run_group,
        job_type=row.job_type,
        host=row.host,
        username=row.username,
        created_at=row.created_at,
        updated_at=row.updated_at,
        state=row.state,
        exit_code=row.exit_code,
        started_at=row.started_at,
        heartbeat_at=row.heartbeat_at,
        finished_at=row.finished_at,
        config=dict(row.config or {}),
        summary=_numbers_back(dict(row.summary or {})),
        rules=dict(row.metrics or {}),
        metadata=dict(row.run_metadata or {}),
        starting_step=row.starting_step,
        last_step=row.last_step,
        runtime=_runtime(row),
        archived=bool(row.archived),
        ordinal=row.ordinal,
        stop_requested=bool(row.stop_requested),
        forked_from=forked,
        paused=float(row.paused),
        private=bool(row.private),
        duration=max(0.0, float(row.runtime) - float(row.paused)),
    )


_LIVE = frozenset({"running", "preempting", "pending"})


def _runtime(row: Any) -> float:
    """The stored runtime (the SDK clock at the last record), or the wall clock so far while live."""
    stored = float(row.runtime)
    if row.state in _LIVE and row.finished_at is None:
        return max(stored, float(row.heartbeat_at) - float(row.started_at))
    return stored


def read_series(
    conn: Connection, incarnation_id: str, key: str, **bounds: Unpack[StepRange]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any]]:
    """A numeric key's (steps, values) in [min_step, max_step], following the lineage chain."""
    c = history_chunks.c
    stream, lower, upper = step_bounds(bounds, UNBOUNDED)
    segments = segments_for(conn, incarnation_id, upper) if stream == 0 else segments_for(conn, incarnation_id)[-1:]
    step_parts: list[npt.NDArray[np.int64]] = []
    value_parts: list[npt.NDArray[Any]] = []
    for seg in segments:
        rows = conn.execute(
            select(c.first_step, c.last_step, c.count, c.dtype, c.steps, c.vals)
            .where(
                c.incarnation_id == seg.incarnation_id,
                c.stream == stream,
                c.key == key,
                c.first_step <= min(seg.max_step, upper),
                c.last_step >= lower,
            )
            .order_by(c.chunk)
        ).all()
        for first_step, last_step, count, dtype, steps_blob, vals in rows:
            steps = hist.decode_steps(steps_blob, first_step, count)
            values = hist.decode_values(vals, dtype)
            hi = min(seg.max_step, upper)
            if last_step > hi or first_step < lower:
                mask = (steps <= hi) & (steps >= lower)
                steps, values = steps[mask], values[mask]
            step_parts.append(steps)
            value_parts.append(values)
    if not step_parts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    values_all = (
        np.concatenate(value_parts)
        if len({p.dtype for p in value_parts}) == 1
        else np.concatenate([p.astype(np.float64) for p in value_parts])
    )
    return np.concatenate(step_parts), values_all


def read_objects(conn: Connection, incarnation_id: str, key: str, **bounds: Unpack[StepRange]) -> list[tuple[int, Any]]:
    """A key's non-numeric values as (step, value), following the lineage chain."""
    v = history_values.c
    stream, lower, upper = step_bounds(bounds, UNBOUNDED)
    out: list[tuple[int, Any]] = []
    for seg in segments_for(conn, incarnation_id, upper):
        for step, blob in conn.execute(
            select(v.step, v.value)
            .where(
                v.incarnation_id == seg.incarnation_id,
                v.stream == stream,
                v.key == key,
                v.step <= min(seg.max_step, upper),
                v.step >= lower,
            )
            .order_by(v.step)
        ):
            out.append((int(step), msgpack.unpackb(blob)))
    return out


def history_keys(conn: Connection, incarnation_id: str, *, stream: int = 0) -> dict[str, dict[str, Any]]:
    """Every key visible in an incarnation's history: numeric or not, count, last step."""
    return history_keys_many(conn, [incarnation_id], stream=stream)[incarnation_id]


def history_keys_many(conn: Connection, incarnation_ids: list[str], *, stream: int = 0) -> dict[str, dict[str, Any]]:
    """`history_keys` of many incarnations. Whole incarnations (no branch step cuts them) are
    summed in one grouped query per table; a fork's ancestors are read segment by segment."""
    chains = segments_for_many(conn, incarnation_ids)
    if stream != 0:
        chains = {inc_id: chain[-1:] for inc_id, chain in chains.items()}
    whole = sorted({s.incarnation_id for chain in chains.values() for s in chain if s.max_step >= UNBOUNDED})
    totals: dict[str, dict[str, dict[str, Any]]] = {inc_id: {} for inc_id in whole}
    c = history_chunks.c
    v = history_values.c
    for offset in range(0, len(whole), 500):
        owners = whole[offset : offset + 500]
        for owner, key, count, last in conn.execute(
            select(c.incarnation_id, c.key, func.sum(c.count), func.max(c.last_step))
            .where(c.incarnation_id.in_(owners), c.stream == stream)
            .group_by(c.incarnation_id, c.key)
        ):
            totals[owner][key] = {"numeric": True, "count": int(count), "last_step": int(last)}
        for owner, key, count, last in conn.execute(
            select(v.incarnation_id, v.key, func.count(), func.max(v.step))
            .where(v.incarnation_id.in_(owners), v.stream == stream)
            .group_by(v.incarnation_id, v.key)
        ):
            info = totals[owner].setdefault(key, {"numeric": False, "count": 0, "last_step": -1})
            info["numeric"] = False
            info["count"] += int(count)
            info["last_step"] = max(info["last_step"], int(last))
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for inc_id in incarnation_ids:
        keys: dict[str, dict[str, Any]] = {}
        for seg in chains[inc_id]:
            found = totals[seg.incarnation_id] if seg.max_step >= UNBOUNDED else _segment_keys(conn, seg, stream)
            for key, info in found.items():
                merged = keys.setdefault(key, {"numeric": True, "count": 0, "last_step": -1})
                merged["numeric"] = merged["numeric"] and info["numeric"]
                merged["count"] += info["count"]
                merged["last_step"] = max(merged["last_step"], info["last_step"])
        out[inc_id] = keys
    return out


def _segment_keys(conn: Connection, seg: Segment, stream: int) -> dict[str, dict[str, Any]]:
    """The keys of one incarnation's rows at or below a branch step."""
    keys: dict[str, dict[str, Any]] = {}
    c = history_chunks.c
    in_segment = (c.incarnation_id == seg.incarnation_id, c.stream == stream, c.first_step <= seg.max_step)
    for key, count, last in conn.execute(
        select(c.key, func.sum(c.count), func.max(c.last_step))
        .where(*in_segment, c.last_step <= seg.max_step)
        .group_by(c.key)
    ):
        info = keys.setdefault(key, {"numeric": True, "count": 0, "last_step": -1})
        info["count"] += int(count)
        info["last_step"] = max(info["last_step"], int(last))
    # A chunk straddling the branch step counts only its points at or below it.
    for key, first_step, count, steps_blob in conn.execute(
        select(c.key, c.first_step, c.count, c.steps).where(*in_segment, c.last_step > seg.max_step)
    ):
        steps = hist.decode_steps(steps_blob, first_step, count)
        kept = int(np.searchsorted(steps, seg.max_step, side="right"))
        info = keys.setdefault(key, {"numeric": True, "count": 0, "last_step": -1})
        info["count"] += kept
        if kept:
            info["last_step"] = max(info["last_step"], int(steps[kept - 1]))
    v = history_values.c
    for key, count, last in conn.execute(
        select(v.key, func.count(), func.max(v.step))
        .where(v.incarnation_id == seg.incarnation_id, v.stream == stream, v.step <= seg.max_step)
        .group_by(v.key)
    ):
        info = keys.setdefault(key, {"numeric": False, "count": 0, "last_step": -1})
        info["numeric"] = False
        info["count"] += int(count)
        info["last_step"] = max(info["last_step"], int(last))
    return keys


def project_rows(conn: Connection, entity: str | None = None) -> list[dict[str, Any]]:
    stmt = (
        select(
            projects.c.entity,
            projects.c.name,
            projects.c.created_at,
            projects.c.public,
            func.count(runs.c.pk).label("run_count"),
            func.max(runs.c.updated_at).label("last_activity"),
        )
        .select_from(projects)
        .outerjoin(runs, runs.c.project_id == projects.c.id)
        .group_by(projects.c.id)
        .order_by(projects.c.entity, projects.c.name)
    )
    if entity is not None:
        stmt = stmt.where(projects.c.entity == entity)
    return [dict(row._mapping) for row in conn.execute(stmt)]


def _incarnation_rows(
    conn: Connection, table: Any, columns: tuple[str, ...], order: str, inc: str
) -> list[dict[str, Any]]:
    """One incarnation's rows of a per-incarnation table, as dicts of `columns`, ordered by `order`."""
    c = table.c
    stmt = select(*(c[name] for name in columns)).where(c.incarnation_id == inc).order_by(c[order])
    return [dict(row._mapping) for row in conn.execute(stmt)]


def console_text(conn: Connection, incarnation_id: str) -> list[dict[str, Any]]:
    return _incarnation_rows(conn, console_lines, ("line_no", "stream", "ts", "text"), "line_no", incarnation_id)


def file_rows(conn: Connection, incarnation_id: str) -> list[dict[str, Any]]:
    return _incarnation_rows(conn, run_files, ("path", "size", "sha256", "updated_at"), "path", incarnation_id)


def alert_rows(conn: Connection, incarnation_id: str) -> list[dict[str, Any]]:
    return _incarnation_rows(conn, alerts, ("title", "text", "level", "ts"), "id", incarnation_id)


_ = and_
