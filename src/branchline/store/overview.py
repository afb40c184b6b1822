"""Chart overviews: many runs' series of one key, read with as few points as a chart can show.

Full chunks carry a sketch (`history.encode_sketch`): each block's minimum and maximum and the
chunk's ends. A long series is drawn from those instead of from every point, so every extreme
survives while a chart of 100 runs × 100k points reads a few thousand points per run. Chunks cut
by the step range or by a fork's branch step, and series too short to need it, are read whole.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, case, select

from branchline.store import history as hist
from branchline.store.lineage import UNBOUNDED, Segment, segments_for_many
from branchline.store.schema import history_chunks

__all__ = ["Overview", "read_overviews"]

_BATCH = 500


@dataclass
class Overview:
    """What to draw of one run: points in step order, how many the range holds, and whether the
    points are a sketch (extremes only) rather than every point."""

    steps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    count: int
    sketched: bool


@dataclass
class _Chunk:
    chunk: int
    first_step: int
    last_step: int
    count: int
    dtype: str
    steps: bytes
    sketch: bytes | None
    vals: bytes | None


def read_overviews(
    conn: Connection,
    incarnation_ids: list[str],
    key: str,
    *,
    points: int,
    stream: int = 0,
    min_step: int | None = None,
    max_step: int | None = None,
) -> dict[str, Overview]:
    """Each incarnation's view of `key` in [min_step, max_step], sketched when it holds at least
    `points * SKETCH_BLOCK` points; two or three queries whatever the number of runs."""
    ids = list(dict.fromkeys(incarnation_ids))
    upper = UNBOUNDED if max_step is None else max_step
    lower = -UNBOUNDED if min_step is None else min_step
    if stream == 0:
        chains = segments_for_many(conn, ids, upper)
    else:  # system metrics belong to the incarnation that measured them
        chains = {inc_id: [Segment(inc_id, UNBOUNDED)] for inc_id in ids}
    chunks = _read_chunks(conn, sorted({seg.incarnation_id for chain in chains.values() for seg in chain}), key, stream)

    # Per run: (sketched?, [(owner, chunk, whether the range or a branch step cuts it)]).
    plans: dict[str, tuple[bool, list[tuple[str, _Chunk, bool]]]] = {}
    missing: dict[str, set[int]] = defaultdict(set)
    for inc_id in ids:
        parts: list[tuple[str, _Chunk, bool]] = []
        for seg in chains[inc_id]:
            hi = min(seg.max_step, upper)
            parts.extend(
                (seg.incarnation_id, chunk, chunk.last_step > hi or chunk.first_step < lower)
                for chunk in chunks.get(seg.incarnation_id, ())
                if chunk.first_step <= hi and chunk.last_step >= lower
            )
        sketched = any(chunk.sketch is not None and not cut for _, chunk, cut in parts) and (
            sum(chunk.count for _, chunk, _ in parts) >= points * hist.SKETCH_BLOCK
        )
        for owner, chunk, cut in parts:
            if chunk.vals is None and (not sketched or cut):
                missing[owner].add(chunk.chunk)
        plans[inc_id] = (sketched, parts)
    _fill_values(conn, chunks, missing, key, stream)
    bounds = {inc_id: {seg.incarnation_id: min(seg.max_step, upper) for seg in chains[inc_id]} for inc_id in ids}

    out: dict[str, Overview] = {}
    for inc_id, (sketched, parts) in plans.items():
        step_parts: list[npt.NDArray[np.int64]] = []
        value_parts: list[npt.NDArray[np.float64]] = []
        count = 0
        sketches: list[tuple[bytes, bytes, int, int]] = []
        for owner, chunk, cut in parts:
            if sketched and chunk.sketch is not None and not cut:
                sketches.append((chunk.sketch, chunk.steps, chunk.first_step, chunk.count))
                count += chunk.count
                continue
            if sketches:
                _append(step_parts, value_parts, *hist.decode_sketches(sketches))
                sketches = []
            assert chunk.vals is not None
            steps = hist.decode_steps(chunk.steps, chunk.first_step, chunk.count)
            values = hist.decode_values(chunk.vals, chunk.dtype).astype(np.float64)
            if cut:
                keep = (steps >= lower) & (steps <= bounds[inc_id][owner])
                steps, values = steps[keep], values[keep]
            _append(step_parts, value_parts, steps, values)
            count += len(steps)
        if sketches:
            _append(step_parts, value_parts, *hist.decode_sketches(sketches))
        if step_parts:
            out[inc_id] = Overview(np.concatenate(step_parts), np.concatenate(value_parts), count, sketched)
        else:
            out[inc_id] = Overview(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64), 0, False)
    return out


def _append(
    step_parts: list[npt.NDArray[np.int64]],
    value_parts: list[npt.NDArray[np.float64]],
    steps: npt.NDArray[np.int64],
    values: npt.NDArray[Any],
) -> None:
    step_parts.append(steps)
    value_parts.append(values.astype(np.float64))


def _read_chunks(conn: Connection, owners: list[str], key: str, stream: int) -> dict[str, list[_Chunk]]:
    """Every chunk of `key` of these incarnations, in order; values only where there is no sketch."""
    c = history_chunks.c
    out: dict[str, list[_Chunk]] = defaultdict(list)
    for offset in range(0, len(owners), _BATCH):
        rows = conn.execute(
            select(
                c.incarnation_id,
                c.chunk,
                c.first_step,
                c.last_step,
                c.count,
                c.dtype,
                c.steps,
                c.sketch,
                case((c.sketch.is_(None), c.vals)),
            )
            .where(c.incarnation_id.in_(owners[offset : offset + _BATCH]), c.stream == stream, c.key == key)
            .order_by(c.incarnation_id, c.chunk)
        ).all()  # one fetch: thousands of small rows
        for owner, chunk, first, last, count, dtype, steps, sketch, vals in rows:
            out[owner].append(_Chunk(chunk, first, last, count, dtype, steps, sketch, vals))
    return out


def _fill_values(
    conn: Connection, chunks: dict[str, list[_Chunk]], missing: dict[str, set[int]], key: str, stream: int
) -> None:
    """Fetch the values of sketched chunks that must be read whole after all."""
    c = history_chunks.c
    for owner, numbers in missing.items():
        by_number = {chunk.chunk: chunk for chunk in chunks[owner]}
        wanted = sorted(numbers)
        for offset in range(0, len(wanted), _BATCH):
            rows = conn.execute(
                select(c.chunk, c.vals).where(
                    c.incarnation_id == owner,
                    c.stream == stream,
                    c.key == key,
                    c.chunk.in_(wanted[offset : offset + _BATCH]),
                )
            )
            for number, vals in rows:
                by_number[number].vals = vals
