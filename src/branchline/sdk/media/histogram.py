"""`Histogram`: counts over bins, stored inline in history as wandb's `histogram` value.

Unlike file media, a histogram is small (at most 512 bins), so it is computed on the caller's
thread and logged as `{"_type": "histogram", "values": counts, "bins": edges}` directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from branchline.sdk.media.base import array_of, short

__all__ = ["Histogram", "MAX_BINS"]

#: The most bins a histogram may have (wandb's limit).
MAX_BINS = 512


#: Values binned per block: the temporaries stay in the CPU cache (a third of np.histogram's time).
_BLOCK = 65_536


def _counts(values: Any, num_bins: int) -> tuple[list[float], list[float]]:
    """Counts and edges of `num_bins` equal bins over the finite values, or ValueError if none are."""
    import numpy as np

    array = array_of(values, "Histogram").ravel()
    if array.dtype.kind not in "buif":
        raise TypeError(
            f"Histogram: {short(values)} holds values of dtype {array.dtype}, which cannot be counted; "
            "expected a sequence or array of numbers."
        )
    if array.dtype.kind == "b":
        array = array.astype(np.uint8)
    if array.size == 0:
        raise ValueError("Histogram: the sequence is empty; nothing to count.")
    low, high = float(array.min()), float(array.max())
    if not (math.isfinite(low) and math.isfinite(high)):  # NaN or infinities: only finite values count
        array = array[np.isfinite(array)]
        if array.size == 0:
            raise ValueError("Histogram: the sequence has no finite values (all NaN or infinite); nothing to count.")
        low, high = float(array.min()), float(array.max())
    if low == high:
        low, high = low - 0.5, high + 0.5
    # Equal bins by index arithmetic, block by block; the maximum lands in an extra bin, folded
    # into the last one (numpy's rule: the last bin includes its right edge).
    scale = num_bins / (high - low)
    counts = np.zeros(num_bins + 1, dtype=np.int64)
    scaled = np.empty(min(_BLOCK, array.size), dtype=np.float64)
    index = np.empty(scaled.size, dtype=np.intp)
    for start in range(0, array.size, _BLOCK):
        part = array[start : start + _BLOCK]
        size = part.size
        np.subtract(part, low, out=scaled[:size])
        # Scaled and truncated toward zero (the bin number) in one pass, straight into the index buffer.
        np.multiply(scaled[:size], scale, out=index[:size], casting="unsafe")
        counts += np.bincount(index[:size], minlength=num_bins + 1)[: num_bins + 1]
    counts[num_bins - 1] += counts[num_bins]
    edges = np.linspace(low, high, num_bins + 1)
    return counts[:num_bins].tolist(), edges.tolist()


class Histogram:
    """A histogram of `sequence` (`num_bins` equal bins, default 64), or a ready `np_histogram`."""

    def __init__(
        self,
        sequence: Sequence[Any] | Any | None = None,
        np_histogram: tuple[Any, Any] | None = None,
        num_bins: int = 64,
    ) -> None:
        if isinstance(num_bins, bool) or not isinstance(num_bins, int) or not 1 <= num_bins <= MAX_BINS:
            raise ValueError(f"Histogram(num_bins={short(num_bins)}): expected an integer from 1 to {MAX_BINS}.")
        if np_histogram is not None:
            self.histogram, self.bins = self._given(np_histogram)
        elif sequence is not None:
            self.histogram, self.bins = _counts(sequence, num_bins)
        else:
            raise ValueError("Histogram needs a sequence of values or np_histogram=(counts, bin_edges).")

    @staticmethod
    def _given(pair: Any) -> tuple[list[float], list[float]]:
        try:
            counts, edges = pair
        except (TypeError, ValueError):
            raise ValueError(f"Histogram(np_histogram={short(pair)}): expected (counts, bin_edges).") from None
        counts_list = [float(c) if not float(c).is_integer() else int(c) for c in array_of(counts, "Histogram").ravel()]
        edge_list = [float(e) for e in array_of(edges, "Histogram").ravel()]
        if len(edge_list) != len(counts_list) + 1:
            raise ValueError(
                f"Histogram(np_histogram=...): {len(counts_list)} counts need {len(counts_list) + 1} bin edges, "
                f"got {len(edge_list)}."
            )
        if len(counts_list) > MAX_BINS:
            raise ValueError(f"Histogram(np_histogram=...): {len(counts_list)} bins; the most allowed is {MAX_BINS}.")
        return counts_list, edge_list

    def to_json(self) -> dict[str, Any]:
        return {"_type": "histogram", "values": list(self.histogram), "bins": list(self.bins)}

    def __repr__(self) -> str:
        return f"<Histogram {len(self.histogram)} bins>"
