"""Reading history for the public API: aligned frames, min/max sampling, scans, full series.

Everything works column-wise on numpy arrays read from the chunked store; per-row dicts are built
only where the caller asks for rows (`scan_history`, `history(pandas=False)`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from branchline.api.backend import SeriesSource
from branchline.errors import UsageError
from branchline.sampling import minmax_indices

__all__ = [
    "STEP",
    "Frame",
    "KeysError",
    "check_keys",
    "frame_records",
    "frame_to_pandas",
    "full_series",
    "load_frame",
    "order_by",
    "sample_frame",
    "scan_rows",
    "stream_number",
]

STEP = "_step"
#: Keys that only grow with the step: their per-bucket extremes are the bucket's ends, no information.
_MONOTONE = frozenset({STEP, "_runtime", "_timestamp"})
#: Rows a scan reads per window; the step span of a window adapts to how densely keys were logged.
_SCAN_WINDOW_ROWS = 100_000

_EMPTY_STEPS: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)


def stream_number(stream: str) -> int:
    """wandb's stream names: "default" is history, "system" (or "events") the system metrics."""
    if stream == "default":
        return 0
    if stream in ("system", "events"):
        return 1
    raise UsageError(f"stream must be 'default' or 'system', got {stream!r}.")


class KeysError(UsageError, ValueError):
    """`keys` is not a list of strings (a ValueError, as in wandb)."""


def check_keys(keys: Any, what: str) -> list[str] | None:
    """`keys` as a de-duplicated list, or None for "every key" (an empty list too, as in wandb)."""
    if keys is None:
        return None
    if isinstance(keys, str) or not isinstance(keys, Sequence) or not all(isinstance(k, str) for k in keys):
        raise KeysError(f"{what}: keys must be a list of strings, got {keys!r}.")
    return list(dict.fromkeys(keys)) or None


@dataclass
class Frame:
    """History rows as columns: `steps` (sorted) and, per key, aligned values and a presence mask."""

    steps: npt.NDArray[np.int64]
    columns: dict[str, tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]]

    def __len__(self) -> int:
        return len(self.steps)

    def take(self, index: npt.NDArray[np.int64]) -> Frame:
        return Frame(
            self.steps[index],
            {key: (values[index], mask[index]) for key, (values, mask) in self.columns.items()},
        )


def _read_column(
    source: SeriesSource,
    incarnation_id: str,
    key: str,
    info: dict[str, Any] | None,
    *,
    stream: int,
    min_step: int | None,
    max_step: int | None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any]]:
    """One key's (steps, values); numeric keys stay numpy, others become object arrays."""
    if info is None:
        return _EMPTY_STEPS, np.empty(0, dtype=np.float64)
    steps, values = source.read_series(incarnation_id, key, stream=stream, min_step=min_step, max_step=max_step)
    if info.get("numeric", True):
        return steps, values
    # A key with any non-numeric value: merge its numeric points (if any) with the others.
    objects = source.read_objects(incarnation_id, key, stream=stream, min_step=min_step, max_step=max_step)
    obj_steps = np.fromiter((step for step, _ in objects), dtype=np.int64, count=len(objects))
    obj_values = np.empty(len(objects), dtype=object)
    obj_values[:] = [value for _, value in objects]
    if len(steps) == 0:
        return obj_steps, obj_values
    all_steps = np.concatenate((steps, obj_steps))
    all_values = np.concatenate((values.astype(object), obj_values))
    order = np.argsort(all_steps, kind="stable")
    return all_steps[order], all_values[order]


def _align(
    steps: npt.NDArray[np.int64], values: npt.NDArray[Any], target: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
    if steps is target or (len(steps) == len(target) and np.array_equal(steps, target)):
        return values, np.ones(len(target), dtype=bool)
    if len(steps) == 0:
        return np.zeros(len(target), dtype=values.dtype), np.zeros(len(target), dtype=bool)
    pos = np.minimum(np.searchsorted(steps, target), len(steps) - 1)
    return values[pos], steps[pos] == target


def _combine(step_arrays: list[npt.NDArray[np.int64]], require_all: bool) -> npt.NDArray[np.int64]:
    if not step_arrays:
        return _EMPTY_STEPS
    first = step_arrays[0]
    if all(s is first or (len(s) == len(first) and np.array_equal(s, first)) for s in step_arrays[1:]):
        return first  # the common case: every key logged at every step
    if require_all:
        out = first
        for steps in step_arrays[1:]:
            out = np.intersect1d(out, steps, assume_unique=True)
        return out
    return np.unique(np.concatenate(step_arrays))


def load_frame(
    source: SeriesSource,
    incarnation_id: str,
    keys: list[str] | None,
    *,
    stream: int = 0,
    min_step: int | None = None,
    max_step: int | None = None,
    info: dict[str, dict[str, Any]] | None = None,
) -> Frame:
    """Rows in [min_step, max_step] (inclusive): every row when `keys` is None, else the rows that
    hold all `keys`. `_step` is implicit in every row and never a column."""
    if info is None:
        info = source.history_keys(incarnation_id, stream=stream)
    require_all = keys is not None
    wanted = sorted(info) if keys is None else [k for k in keys if k != STEP]
    if not wanted:
        # Only `_step` asked for: the steps at which anything was logged.
        wanted, require_all = sorted(info), False
        if not wanted:
            return Frame(_EMPTY_STEPS, {})
        steps = load_frame(source, incarnation_id, None, stream=stream, min_step=min_step, max_step=max_step).steps
        return Frame(steps, {})
    raw = {
        key: _read_column(
            source, incarnation_id, key, info.get(key), stream=stream, min_step=min_step, max_step=max_step
        )
        for key in wanted
    }
    target = _combine([steps for steps, _ in raw.values()], require_all)
    return Frame(target, {key: _align(steps, values, target) for key, (steps, values) in raw.items()})


def sample_frame(frame: Frame, samples: int, *, skip: frozenset[str] = frozenset()) -> Frame:
    """At most `samples` rows keeping, for every numeric key, its minimum and maximum in each bucket.

    Buckets are equal runs of rows; with k numeric keys each gets (samples - 2) // 2k buckets, so
    a single spike in a million points survives. Rows the extremes leave unused are spread evenly.
    """
    n = len(frame)
    if samples <= 0:
        raise UsageError(f"samples must be a positive number, got {samples}.")
    if n <= samples:
        return frame
    numeric = [
        key
        for key, (values, _) in frame.columns.items()
        if key not in _MONOTONE and key not in skip and values.dtype.kind in "biuf"
    ]
    picked: list[npt.NDArray[np.int64]] = [np.array([0, n - 1], dtype=np.int64)]
    if numeric:
        buckets = max(1, (samples - 2) // (2 * len(numeric)))
        for key in numeric:
            values, mask = frame.columns[key]
            series = values if mask.all() else np.where(mask, values.astype(np.float64), np.nan)
            picked.append(minmax_indices(series, buckets))
    index = np.unique(np.concatenate(picked))
    if len(index) > samples:  # more keys than the budget can give two rows each
        index = index[np.linspace(0, len(index) - 1, samples).round().astype(np.int64)]
    elif len(index) < samples:
        unused = np.ones(n, dtype=bool)
        unused[index] = False
        rest = np.flatnonzero(unused)
        spread = rest[np.linspace(0, len(rest) - 1, samples - len(index)).round().astype(np.int64)]
        index = np.unique(np.concatenate((index, spread)))
    return frame.take(index)


def order_by(frame: Frame, x_axis: str) -> Frame:
    """Rows sorted by the `x_axis` column (rows without it last); `_step` order is the stored one."""
    if x_axis == STEP or x_axis not in frame.columns:
        return frame
    values, mask = frame.columns[x_axis]
    if values.dtype.kind not in "biuf":
        return frame
    keys = np.where(mask, values.astype(np.float64), np.inf)
    order = np.argsort(keys, kind="stable")
    return frame.take(order.astype(np.int64))


def frame_records(frame: Frame, *, with_step: bool = True, keys: list[str] | None = None) -> list[dict[str, Any]]:
    """One dict per row, holding only the keys present in that row."""
    rows: list[dict[str, Any]] = [{} for _ in range(len(frame))]
    if with_step:
        for row, step in zip(rows, frame.steps.tolist(), strict=True):
            row[STEP] = step
    names = keys if keys is not None else list(frame.columns)
    for key in names:
        if key not in frame.columns:
            continue
        values, mask = frame.columns[key]
        as_python = values.tolist()
        if mask.all():
            for row, value in zip(rows, as_python, strict=True):
                row[key] = value
        else:
            for row, value, present in zip(rows, as_python, mask.tolist(), strict=True):
                if present:
                    row[key] = value
    return rows


def frame_to_pandas(frame: Frame, *, with_step: bool = True, keys: list[str] | None = None) -> Any:
    """A DataFrame with `_step` first; missing values are NaN, as in wandb."""
    try:
        import pandas as pd
    except ImportError:
        raise UsageError(
            "history(pandas=True) needs pandas: pip install 'branchline[pandas]', or pass pandas=False."
        ) from None
    data: dict[str, Any] = {}
    if with_step:
        data[STEP] = frame.steps
    names = keys if keys is not None else list(frame.columns)
    for key in names:
        if key not in frame.columns:
            continue
        values, mask = frame.columns[key]
        if mask.all():
            data[key] = values
        elif values.dtype.kind in "iuf":
            data[key] = np.where(mask, values.astype(np.float64), np.nan)
        else:
            column = values.astype(object)
            column[~mask] = np.nan
            data[key] = column
    return pd.DataFrame(data)


def scan_rows(
    source: SeriesSource,
    incarnation_id: str,
    *,
    keys: list[str] | None,
    page_size: int,
    min_step: int,
    max_step: int | None,
    stream: int = 0,
) -> Iterator[dict[str, Any]]:
    """Every row with min_step <= step < max_step; with `keys`, only rows holding all of them,
    each row holding just those keys. Reads a window of steps at a time."""
    if page_size <= 0:
        raise UsageError(f"page_size must be positive, got {page_size}.")
    info = source.history_keys(incarnation_id, stream=stream)
    wanted = [k for k in keys if k != STEP] if keys is not None else sorted(info)
    if keys is not None and any(k not in info for k in wanted):
        return  # a key never logged: no row can hold all the keys
    last = max((int(info[k]["last_step"]) for k in (wanted or info)), default=-1)
    upper = last + 1 if max_step is None else min(int(max_step), last + 1)
    if upper <= min_step:
        return
    densest = max((int(info[k]["count"]) for k in (wanted or info)), default=0)
    span = upper - min_step
    window = max(page_size, math.ceil(span * _SCAN_WINDOW_ROWS / max(1, densest)))
    with_step = keys is None or STEP in keys
    for low in range(min_step, upper, window):
        high = min(low + window, upper)
        frame = load_frame(source, incarnation_id, keys, stream=stream, min_step=low, max_step=high - 1, info=info)
        yield from frame_records(frame, with_step=with_step, keys=wanted)


def full_series(
    source: SeriesSource, incarnation_id: str, key: str, *, x_axis: str = STEP, stream: int = 0
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """(x, values) of one numeric key at full resolution, straight from the chunks."""
    steps, values = source.read_series(incarnation_id, key, stream=stream)
    if len(steps) == 0 and source.read_objects(incarnation_id, key, stream=stream):
        raise UsageError(f"{key!r} holds non-numeric values; read it with scan_history(keys=[{key!r}]).")
    if x_axis == STEP:
        return steps, values
    x_steps, x_values = source.read_series(incarnation_id, x_axis, stream=stream)
    if len(x_steps) == 0:
        raise UsageError(f"x_axis {x_axis!r} has no numeric values in this run's history.")
    _, left, right = np.intersect1d(steps, x_steps, assume_unique=True, return_indices=True)
    return x_values[right], values[left]
