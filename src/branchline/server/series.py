"""Chart series as JSON: runs' series reduced by the store (store/charts.py), and group bands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Unpack

import numpy as np
import numpy.typing as npt
import orjson
from fastapi import Response

from branchline.store.interface import ChartOptions, ChartReader, SeriesReader

__all__ = ["chart_series", "finite_list", "group_series", "series_response"]


def series_response(payload: dict[str, Any]) -> Response:
    """Chart series as JSON, encoded by orjson: a workspace moves megabytes of floats, which the
    standard encoder (behind response-model validation) takes ten times longer to write."""
    return Response(orjson.dumps(payload), media_type="application/json")


def finite_list(values: npt.NDArray[np.float64]) -> list[float | None]:
    """The values as a JSON-ready list: NaN and ±Infinity become None (a gap in the line)."""
    out: list[float | None] = values.tolist()
    bad = ~np.isfinite(values)
    if bad.any():
        for index in np.flatnonzero(bad):
            out[int(index)] = None
    return out


def chart_series(
    store: ChartReader, incarnation_ids: Sequence[str], keys: Sequence[str], **options: Unpack[ChartOptions]
) -> list[dict[str, Any]]:
    """Every run's series of every key, run by run and keys in order, as JSON-ready points.

    The store reduces them (`ChartReader.chart_series`): at most 2*buckets+2 points each, spikes
    kept, x ascending; here they only become lists with NaN and ±Infinity as gaps.
    """
    reduced = store.chart_series(incarnation_ids, keys, **options)
    return [
        {
            "incarnation_id": s.incarnation_id,
            "key": s.key,
            "x": finite_list(s.x),
            "y": finite_list(s.y),
            "count": s.count,
            "sampled": s.sampled,
            "last_step": s.last_step,
        }
        for s in reduced
    ]


def group_series(
    store: SeriesReader,
    incarnation_ids: list[str],
    key: str,
    *,
    stream: int = 0,
    buckets: int = 1000,
    min_step: int | None = None,
    max_step: int | None = None,
) -> dict[str, Any]:
    """A group's mean with its min–max envelope, aligned on the union of the runs' steps.

    Every run's full-resolution series is placed on the union of steps (a run contributes at the
    steps it logged; NaN and ±Infinity are left out), so the statistics are exact per step. Only
    then is the result reduced to at most `buckets` buckets: each keeps the mean of its per-step
    means and the lowest minimum and highest maximum, so the band never loses an extreme.
    """
    reads = [
        store.read_series(inc_id, key, stream=stream, min_step=min_step, max_step=max_step)
        for inc_id in dict.fromkeys(incarnation_ids)
    ]
    reads = [(steps, raw.astype(np.float64)) for steps, raw in reads if len(steps)]
    if not reads:
        return {"key": key, "x": [], "mean": [], "min": [], "max": [], "runs": 0, "count": 0, "sampled": False}
    union = np.unique(np.concatenate([steps for steps, _ in reads]))
    size = len(union)
    sums = np.zeros(size, dtype=np.float64)
    counts = np.zeros(size, dtype=np.int64)
    lows = np.full(size, np.inf)
    highs = np.full(size, -np.inf)
    for steps, values in reads:
        finite = np.isfinite(values)
        at = np.searchsorted(union, steps[finite])
        kept = values[finite]
        # Steps are unique within one run, so plain fancy-indexed updates are exact.
        sums[at] += kept
        counts[at] += 1
        lows[at] = np.minimum(lows[at], kept)
        highs[at] = np.maximum(highs[at], kept)
    has = counts > 0
    xs = union.astype(np.float64)
    if size > buckets:
        starts = (np.arange(buckets, dtype=np.int64) * size) // buckets
        starts = np.unique(starts)
        means = np.where(has, sums / np.maximum(counts, 1), 0.0)
        present = np.add.reduceat(has.astype(np.int64), starts)
        mean = np.add.reduceat(means, starts) / np.maximum(present, 1)
        low = np.minimum.reduceat(lows, starts)
        high = np.maximum.reduceat(highs, starts)
        xs = xs[starts]
        empty = present == 0
    else:
        mean = sums / np.maximum(counts, 1)
        low, high = lows, highs
        empty = ~has
    mean = np.where(empty, np.nan, mean)
    low = np.where(empty, np.nan, low)
    high = np.where(empty, np.nan, high)
    return {
        "key": key,
        "x": finite_list(xs),
        "mean": finite_list(mean),
        "min": finite_list(low),
        "max": finite_list(high),
        "runs": len(reads),
        "count": size,
        "sampled": size > buckets,
    }
