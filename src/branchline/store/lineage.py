"""History lineage: which (incarnation, step bound) segments make up what an incarnation sees.

An incarnation with a parent at step N sees the parent's view up to and including N, then its own
rows. Nothing is copied: readers walk the chain and concatenate segments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np
from sqlalchemy import Connection, and_, func, select

from branchline.store.history import decode_steps, decode_values
from branchline.store.schema import history_chunks, history_values, incarnations
from branchline.summaries import Aggregate, SummaryState, set_path

__all__ = ["Segment", "segments_for", "segments_for_many", "derive_summary", "UNBOUNDED"]

UNBOUNDED = 2**62


@dataclass(frozen=True)
class Segment:
    """Rows of `incarnation_id` with step <= `max_step` belong to the view."""

    incarnation_id: str
    max_step: int


def segments_for(conn: Connection, incarnation_id: str, max_step: int = UNBOUNDED) -> list[Segment]:
    """The segments of an incarnation's view, oldest first."""
    return segments_for_many(conn, [incarnation_id], max_step)[incarnation_id]


def segments_for_many(
    conn: Connection, incarnation_ids: list[str], max_step: int = UNBOUNDED
) -> dict[str, list[Segment]]:
    """`segments_for` of many incarnations, one query per generation of ancestors."""
    parents: dict[str, tuple[str | None, int]] = {}
    frontier = set(incarnation_ids)
    while frontier:
        found = conn.execute(
            select(incarnations.c.id, incarnations.c.parent_id, incarnations.c.parent_step).where(
                incarnations.c.id.in_(sorted(frontier))
            )
        ).all()
        for inc_id, parent_id, parent_step in found:
            parents[inc_id] = (parent_id, int(parent_step) if parent_step is not None else UNBOUNDED)
        frontier = {p for p, _ in (parents[i] for i in frontier if i in parents) if p is not None} - set(parents)
    out: dict[str, list[Segment]] = {}
    for inc_id in incarnation_ids:
        chain: list[Segment] = []
        current: str | None = inc_id
        bound = max_step
        seen: set[str] = set()
        while current is not None and current not in seen:
            seen.add(current)
            chain.append(Segment(current, bound))
            parent_id, parent_step = parents.get(current, (None, UNBOUNDED))
            if parent_id is None:
                break
            bound = min(bound, parent_step)
            current = parent_id
        chain.reverse()
        out[inc_id] = chain
    return out


def _path(flat_key: str) -> tuple[str, ...]:
    return tuple(flat_key.split("."))


def derive_summary(conn: Connection, segments: list[Segment], rules: dict[str, Any]) -> SummaryState:
    """The summary a fresh incarnation inherits: computed from the history it can see.

    Aggregates come from per-chunk statistics, so only the chunk at each segment's bound is decoded,
    whatever the length of the history.
    """
    state = SummaryState.restore({}, {"defs": rules.get("defs") or [], "explicit": []})
    last: dict[str, tuple[int, Any]] = {}
    aggregates: dict[str, Aggregate] = {}

    def aggregate(key: str) -> Aggregate:
        agg = aggregates.get(key)
        if agg is None:
            agg = aggregates[key] = Aggregate()
        return agg

    for seg in segments:
        _add_whole_chunks(conn, seg, aggregate)
        _add_edge_chunks(conn, seg, aggregate, last)
        _add_objects(conn, seg, aggregate, last)

    for key, (_step, value) in last.items():
        metric = state.definition_for(key)
        if metric is not None and metric.summary:
            if "none" in metric.summary:
                continue
            state.aggregates[key] = aggregates[key]
            set_path(state.summary, _path(key), aggregates[key].view(metric.summary))
        elif value is not None:
            set_path(state.summary, _path(key), value)
    if last:
        state.summary["_step"] = max(step for step, _ in last.values())
    return state


def _add_whole_chunks(conn: Connection, seg: Segment, aggregate: Callable[[str], Aggregate]) -> None:
    """Whole chunks of the segment below its bound: their statistics only."""
    c = history_chunks.c
    in_seg = and_(c.incarnation_id == seg.incarnation_id, c.stream == 0, c.first_step <= seg.max_step)
    stats = conn.execute(
        select(
            c.key,
            func.min(c.vmin),
            func.max(c.vmax),
            func.sum(c.vsum),
            func.sum(c.vcount),
        )
        .where(in_seg, c.last_step <= seg.max_step)
        .group_by(c.key)
    ).all()
    for key, vmin, vmax, vsum, vcount in stats:
        if vcount:
            agg = aggregate(key)
            agg.min = vmin if agg.min is None else min(agg.min, vmin)
            agg.max = vmax if agg.max is None else max(agg.max, vmax)
            agg.sum += float(vsum)
            agg.count += int(vcount)


def _add_edge_chunks(
    conn: Connection, seg: Segment, aggregate: Callable[[str], Aggregate], last: dict[str, tuple[int, Any]]
) -> None:
    """The last chunk at or below the bound per key: decode it for the last value (and the partial
    statistics when it straddles the bound); chunk 0 gives the first value."""
    c = history_chunks.c
    in_seg = and_(c.incarnation_id == seg.incarnation_id, c.stream == 0, c.first_step <= seg.max_step)
    last_chunk = select(c.key, func.max(c.chunk).label("chunk")).where(in_seg).group_by(c.key).subquery()
    edge_rows = conn.execute(
        select(c.key, c.chunk, c.first_step, c.last_step, c.count, c.dtype, c.steps, c.vals).join(
            last_chunk,
            and_(
                c.key == last_chunk.c.key,
                c.chunk == last_chunk.c.chunk,
                c.incarnation_id == seg.incarnation_id,
                c.stream == 0,
            ),
        )
    ).all()
    first_rows = conn.execute(
        select(c.key, c.first_step, c.count, c.dtype, c.steps, c.vals).where(
            c.incarnation_id == seg.incarnation_id, c.stream == 0, c.chunk == 0, c.first_step <= seg.max_step
        )
    ).all()
    for key, _first_step, _count, dtype, _steps, vals in first_rows:
        agg = aggregate(key)
        if not agg.has_first:
            agg.first = decode_values(vals, dtype)[0].item()
            agg.has_first = True
    for key, _chunk, first_step, last_step, count, dtype, steps_blob, vals in edge_rows:
        steps = decode_steps(steps_blob, first_step, count)
        values = decode_values(vals, dtype)
        keep = int(np.searchsorted(steps, seg.max_step, side="right"))
        if keep == 0:
            continue
        last[key] = (int(steps[keep - 1]), values[keep - 1].item())
        agg = aggregate(key)
        agg.last = last[key][1]
        if last_step > seg.max_step and dtype != "t":
            partial = values[:keep].astype(np.float64)
            partial = partial[~np.isnan(partial)]
            if len(partial):
                agg.min = float(partial.min()) if agg.min is None else min(agg.min, float(partial.min()))
                agg.max = float(partial.max()) if agg.max is None else max(agg.max, float(partial.max()))
                agg.sum += float(partial.sum())
                agg.count += len(partial)


def _add_objects(
    conn: Connection, seg: Segment, aggregate: Callable[[str], Aggregate], last: dict[str, tuple[int, Any]]
) -> None:
    """Non-numeric values: the last one per key within the bound."""
    v = history_values.c
    latest = (
        select(v.key, func.max(v.step).label("step"))
        .where(v.incarnation_id == seg.incarnation_id, v.stream == 0, v.step <= seg.max_step)
        .group_by(v.key)
        .subquery()
    )
    for key, step, blob in conn.execute(
        select(v.key, v.step, v.value).join(
            latest,
            and_(
                v.key == latest.c.key,
                v.step == latest.c.step,
                v.incarnation_id == seg.incarnation_id,
                v.stream == 0,
            ),
        )
    ).all():
        value = msgpack.unpackb(blob)
        if key not in last or last[key][0] <= step:
            last[key] = (int(step), value)
        agg = aggregate(key)
        agg.last = value
        if not agg.has_first:
            agg.first, agg.has_first = value, True
