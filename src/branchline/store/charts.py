"""Chart reads: series already reduced to the points a chart draws, computed where the data is.

Against `_step` a long series is drawn from its chunks' sketches (store/overview.py), so every
extreme survives while only a few points per block are read. Against another key of the same
stream (`_runtime`, `_timestamp`, a metric) both series are read whole and joined on the step.
Either way each bucket keeps its minimum and maximum, so spikes are never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection

from branchline.store import history as hist
from branchline.store.overview import read_overviews
from branchline.store.reads import read_series

__all__ = ["TIME_AXES", "ChartSeries", "chart_series"]

#: x-axes that grow with the step, so points need no re-sorting.
TIME_AXES = frozenset({"_step", "_runtime", "_timestamp"})

Arrays = tuple[npt.NDArray[np.int64], npt.NDArray[np.generic]]


@dataclass
class ChartSeries:
    """One run's series of one key as a chart draws it: at most 2*buckets+2 points, x ascending."""

    incarnation_id: str
    key: str
    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    #: Points in the step range before reduction.
    count: int
    #: Whether points were left out.
    sampled: bool
    #: The last step in the range that has a value (-1: none).
    last_step: int


def chart_series(
    conn: Connection,
    incarnation_ids: Sequence[str],
    keys: Sequence[str],
    *,
    x: str = "_step",
    stream: int = 0,
    buckets: int = 1000,
    min_step: int | None = None,
    max_step: int | None = None,
) -> list[ChartSeries]:
    """Every run's series of every key, run by run and keys in order (duplicates read once)."""
    ids = list(dict.fromkeys(incarnation_ids))
    names = list(dict.fromkeys(keys))
    if not names:
        return []
    if x == "_step":
        by_key = {
            key: _step_series(conn, ids, key, buckets=buckets, stream=stream, min_step=min_step, max_step=max_step)
            for key in names
        }
        return [by_key[key][index] for index in range(len(ids)) for key in names]
    out: list[ChartSeries] = []
    for inc_id in ids:

        def read(key: str, inc_id: str = inc_id) -> Arrays:
            return read_series(conn, inc_id, key, stream=stream, min_step=min_step, max_step=max_step)

        x_read = read(x)  # one read of the axis for all keys
        out.extend(_against(inc_id, key, read(key), x, x_read, buckets) for key in names)
    return out


def _step_series(
    conn: Connection,
    ids: list[str],
    key: str,
    *,
    buckets: int,
    stream: int,
    min_step: int | None,
    max_step: int | None,
) -> list[ChartSeries]:
    views = read_overviews(conn, ids, key, points=buckets, stream=stream, min_step=min_step, max_step=max_step)
    out = []
    for inc_id in ids:
        view = views[inc_id]
        picked = (
            hist.bucket_extremes(view.steps, view.values, buckets)
            if view.sketched
            else hist.minmax_indices(view.values, buckets)
        )
        xs = view.steps[picked].astype(np.float64)
        out.append(_body(inc_id, key, xs, view.values[picked], view.count, len(picked) < view.count, view.steps))
    return out


def _against(inc_id: str, key: str, y_read: Arrays, x: str, x_read: Arrays, buckets: int) -> ChartSeries:
    """`key` against the axis `x`, joined on the step; rows lacking either value are left out.
    Downsampling runs in step order over y; points are then sorted by x if it is not ascending."""
    steps, raw = y_read
    x_steps, x_raw = x_read
    _, at_y, at_x = np.intersect1d(steps, x_steps, return_indices=True)
    steps, y, xs = steps[at_y], raw[at_y].astype(np.float64), x_raw[at_x].astype(np.float64)
    if x not in TIME_AXES:
        keep = np.isfinite(xs)
        steps, y, xs = steps[keep], y[keep], xs[keep]
    count = len(y)
    picked = hist.minmax_indices(y, buckets)
    xs, y = xs[picked], y[picked]
    if len(xs) > 1 and bool(np.any(np.diff(xs) < 0)):
        # A metric axis, or time that restarts (a fork's own runtime): charts need x ascending.
        order = np.argsort(xs, kind="stable")
        xs, y = xs[order], y[order]
    return _body(inc_id, key, xs, y, count, len(picked) < count, steps)


def _body(
    inc_id: str,
    key: str,
    xs: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    count: int,
    sampled: bool,
    steps: npt.NDArray[np.int64],
) -> ChartSeries:
    last = int(steps[-1]) if len(steps) else -1
    return ChartSeries(inc_id, key, xs, np.asarray(y, dtype=np.float64), count, sampled, last)
