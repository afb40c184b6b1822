"""Chart series: a metric against an x-axis, downsampled on the server keeping each bucket's min and max."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from fastapi import Response

from branchline.store import Store
from branchline.store import history as hist
from branchline.store.history import minmax_indices

__all__ = ["TIME_AXES", "chart_series", "finite_list", "group_series", "series_response", "step_series"]

#: x-axes that grow with the step, so points need no re-sorting.
TIME_AXES = frozenset({"_step", "_runtime", "_timestamp"})

Arrays = tuple[npt.NDArray[np.int64], npt.NDArray[Any]]


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
    store: Store,
    incarnation_id: str,
    key: str,
    *,
    x: str = "_step",
    stream: int = 0,
    buckets: int = 1000,
    min_step: int | None = None,
    max_step: int | None = None,
    x_cache: dict[str, Arrays] | None = None,
) -> dict[str, Any]:
    """One series: (x, y) points of `key`, at most 2*buckets+2 of them, spikes kept.

    The x-axis is `_step` or another key of the same stream joined on the step (rows that lack
    either value are left out). Downsampling runs in step order over the y values; points are
    then sorted by x when the axis is not already ascending.
    """
    if x == "_step":
        return step_series(
            store, [incarnation_id], key, stream=stream, buckets=buckets, min_step=min_step, max_step=max_step
        )[0]
    steps, raw = store.read_series(incarnation_id, key, stream=stream, min_step=min_step, max_step=max_step)
    y = raw.astype(np.float64)
    if x_cache is not None and x in x_cache:
        x_steps, x_raw = x_cache[x]
    else:
        x_steps, x_raw = store.read_series(incarnation_id, x, stream=stream, min_step=min_step, max_step=max_step)
        if x_cache is not None:
            x_cache[x] = (x_steps, x_raw)
    _, at_y, at_x = np.intersect1d(steps, x_steps, return_indices=True)
    steps, y, xs = steps[at_y], y[at_y], x_raw[at_x].astype(np.float64)
    if x not in TIME_AXES:
        keep = np.isfinite(xs)
        steps, y, xs = steps[keep], y[keep], xs[keep]
    count = len(y)
    picked = minmax_indices(y, buckets)
    xs, y = xs[picked], y[picked]
    if len(xs) > 1 and bool(np.any(np.diff(xs) < 0)):
        # A metric axis, or time that restarts (a fork's own runtime): charts need x ascending.
        order = np.argsort(xs, kind="stable")
        xs, y = xs[order], y[order]
    return _series_body(incarnation_id, key, xs, y, count, len(picked) < count, steps)


def step_series(
    store: Store,
    incarnation_ids: list[str],
    key: str,
    *,
    stream: int = 0,
    buckets: int = 1000,
    min_step: int | None = None,
    max_step: int | None = None,
) -> list[dict[str, Any]]:
    """Many runs' series of `key` against `_step`, in one read: long series are drawn from the
    chunks' sketches, so every extreme is kept while only a few points per block are read."""
    overviews = store.read_series_overviews(
        incarnation_ids, key, points=buckets, stream=stream, min_step=min_step, max_step=max_step
    )
    out = []
    for inc_id in dict.fromkeys(incarnation_ids):
        view = overviews[inc_id]
        picked = (
            hist.bucket_extremes(view.steps, view.values, buckets)
            if view.sketched
            else minmax_indices(view.values, buckets)
        )
        xs = view.steps[picked].astype(np.float64)
        out.append(_series_body(inc_id, key, xs, view.values[picked], view.count, len(picked) < view.count, view.steps))
    return out


def _series_body(
    incarnation_id: str,
    key: str,
    xs: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    count: int,
    sampled: bool,
    steps: npt.NDArray[np.int64],
) -> dict[str, Any]:
    return {
        "incarnation_id": incarnation_id,
        "key": key,
        "x": finite_list(xs),
        "y": finite_list(y),
        "count": count,
        "sampled": sampled,
        "last_step": int(steps[-1]) if len(steps) else -1,
    }


def group_series(
    store: Store,
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
