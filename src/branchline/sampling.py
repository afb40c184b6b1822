"""Downsampling a series for drawing: which points to keep so that every spike survives.

A neutral module: the store reduces chart series with it and the public Api samples history with
it, so neither reaches into the other's internals.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["minmax_indices"]


def minmax_indices(values: npt.NDArray[Any], buckets: int) -> npt.NDArray[np.int64]:
    """Indices of each bucket's minimum and maximum, plus the series' ends; at most 2*buckets+2.

    Buckets split the series into equal index ranges; keeping min and max per bucket means a
    single spike among a million points is still drawn.
    """
    n = len(values)
    if n == 0 or buckets <= 0:
        return np.empty(0, dtype=np.int64)
    if n <= buckets * 2:
        return np.arange(n, dtype=np.int64)
    as_float = values.astype(np.float64)
    # NaN must never be picked as an extreme; pad the tail so buckets reshape evenly.
    size = -(-n // buckets)
    padded = size * buckets
    low = np.full(padded, np.inf)
    high = np.full(padded, -np.inf)
    low[:n] = np.where(np.isnan(as_float), np.inf, as_float)
    high[:n] = np.where(np.isnan(as_float), -np.inf, as_float)
    base = np.arange(0, padded, size, dtype=np.int64)
    picked = np.concatenate(
        (
            base + low.reshape(buckets, size).argmin(axis=1),
            base + high.reshape(buckets, size).argmax(axis=1),
            np.array([0, n - 1]),
        )
    )
    return np.unique(picked[picked < n].astype(np.int64))
