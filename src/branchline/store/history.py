"""Column-wise history: numeric series stored as compact chunks of (step, value) arrays.

A chunk holds up to CHUNK_SIZE points of one key. Steps are stored as deltas (an all-ones delta
run is stored as nothing at all), values as raw little-endian arrays, time keys as microsecond
deltas; zlib is applied only where it pays. The last chunk of a key is the open tail, rewritten
until it is full.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from branchline.sampling import minmax_indices

__all__ = [
    "CHUNK_SIZE",
    "TIME_KEYS",
    "Chunk",
    "encode_chunk",
    "decode_steps",
    "decode_values",
    "split_into_chunks",
    "minmax_indices",
    "is_numeric",
    "SKETCH_BLOCK",
    "encode_sketch",
    "decode_sketches",
    "bucket_extremes",
]

CHUNK_SIZE = 2048
#: A full chunk also stores, per block of this many points, where its minimum and maximum are:
#: a chart of a long series reads those instead of decoding every point.
SKETCH_BLOCK = 64
TIME_KEYS = frozenset({"_runtime", "_timestamp"})

_F8 = np.dtype("<f8")
_I8 = np.dtype("<i8")
_FLAG_ZLIB = b"z"
_FLAG_RAW = b"r"
_FLAG_UNIT = b"u"  # consecutive steps: nothing stored


def is_numeric(value: Any) -> bool:
    return type(value) in (int, float, bool) and (type(value) is not int or -(2**63) <= value < 2**63)


@dataclass
class Chunk:
    """One decoded chunk: its number, steps and values, and its stored dtype code."""

    chunk: int
    steps: npt.NDArray[np.int64]
    values: npt.NDArray[Any]
    dtype: str


def _pack(raw: bytes, final: bool = True) -> bytes:
    # The open tail is rewritten at every batch: compress a chunk once, when it is full, and only
    # if a probe of its start says it pays (random floats never shrink).
    if not final or len(zlib.compress(raw[:1024], 1)) > min(len(raw), 1024) * 0.9:
        return _FLAG_RAW + raw
    packed = zlib.compress(raw, 1)
    if len(packed) < len(raw) * 0.9:
        return _FLAG_ZLIB + packed
    return _FLAG_RAW + raw


def _unpack(blob: bytes) -> bytes:
    flag, body = blob[:1], blob[1:]
    return zlib.decompress(body) if flag == _FLAG_ZLIB else body


def encode_steps(steps: npt.NDArray[np.int64], final: bool = True) -> bytes:
    if len(steps) <= 1 or bool(np.all(np.diff(steps) == 1)):
        return _FLAG_UNIT
    return _pack(np.diff(steps).astype(_I8).tobytes(), final)


def decode_steps(blob: bytes, first_step: int, count: int) -> npt.NDArray[np.int64]:
    if blob[:1] == _FLAG_UNIT:
        return np.arange(first_step, first_step + count, dtype=np.int64)
    deltas = np.frombuffer(_unpack(blob), dtype=_I8)
    out = np.empty(count, dtype=np.int64)
    out[0] = first_step
    np.cumsum(deltas, out=out[1:])
    out[1:] += first_step
    return out


def encode_values(values: npt.NDArray[Any], dtype: str, final: bool = True) -> bytes:
    if dtype == "t":
        micros = np.round(values.astype(np.float64) * 1e6).astype(_I8)
        body = np.concatenate(([micros[0]], np.diff(micros))).astype(_I8).tobytes()
        return _pack(body, final)
    if dtype == "i":
        return _pack(values.astype(_I8).tobytes(), final)
    if dtype == "b":
        return _FLAG_RAW + values.astype(np.uint8).tobytes()
    return _pack(values.astype(_F8).tobytes(), final)


def decode_values(blob: bytes, dtype: str) -> npt.NDArray[Any]:
    raw = _unpack(blob)
    if dtype == "t":
        return np.cumsum(np.frombuffer(raw, dtype=_I8)).astype(np.float64) / 1e6
    if dtype == "i":
        return np.frombuffer(raw, dtype=_I8)
    if dtype == "b":
        return np.frombuffer(raw, dtype=np.uint8).astype(bool)
    return np.frombuffer(raw, dtype=_F8)


def dtype_of(key: str, values: list[Any]) -> str:
    if key in TIME_KEYS:
        return "t"
    kinds = {type(v) for v in values}
    if kinds == {bool}:
        return "b"
    if kinds <= {int, bool}:
        return "i"
    return "f"


def merge_dtypes(old: str, new: str) -> str:
    if old == new:
        return old
    if "t" in (old, new):
        return "t"
    if {old, new} <= {"i", "b"}:
        return "i"
    return "f"


def to_array(values: list[Any], dtype: str) -> npt.NDArray[Any]:
    if dtype == "b":
        return np.array(values, dtype=bool)
    if dtype == "i":
        return np.array(values, dtype=np.int64)
    return np.array(values, dtype=np.float64)


def chunk_stats(values: npt.NDArray[Any], dtype: str) -> tuple[float | None, float | None, float | None, int]:
    """min, max, sum and count of the non-NaN values of a chunk."""
    if dtype == "t" or len(values) == 0:
        return None, None, None, 0
    as_float = values.astype(np.float64)
    finite_or_inf = as_float[~np.isnan(as_float)]
    if len(finite_or_inf) == 0:
        return None, None, None, 0
    return (
        float(finite_or_inf.min()),
        float(finite_or_inf.max()),
        float(finite_or_inf.sum()),
        len(finite_or_inf),
    )


def encode_chunk(chunk: int, steps: npt.NDArray[np.int64], values: npt.NDArray[Any], dtype: str) -> dict[str, Any]:
    """A row for the history_chunks table (without incarnation, stream and key)."""
    vmin, vmax, vsum, vcount = chunk_stats(values, dtype)
    return {
        "chunk": chunk,
        "first_step": int(steps[0]),
        "last_step": int(steps[-1]),
        "count": len(steps),
        "dtype": dtype,
        "steps": encode_steps(steps, final=len(steps) >= CHUNK_SIZE),
        "vals": encode_values(values, dtype, final=len(steps) >= CHUNK_SIZE),
        "vmin": vmin,
        "vmax": vmax,
        "vsum": vsum,
        "vcount": vcount,
        "sketch": encode_sketch(steps, values),
    }


def encode_sketch(steps: npt.NDArray[np.int64], values: npt.NDArray[Any]) -> bytes | None:
    """A full chunk's outline: the positions in the chunk and the values of each block's minimum
    and maximum (blocks of SKETCH_BLOCK points; NaN is never an extreme), and of its first and
    last points. None for the open tail, which is read whole. About 0.3 bytes per point."""
    n = len(values)
    if n < CHUNK_SIZE or n % SKETCH_BLOCK:
        return None
    as_float = values.astype(_F8)
    nan = np.isnan(as_float)
    blocks = n // SKETCH_BLOCK
    base = np.arange(0, n, SKETCH_BLOCK, dtype=np.int64)
    lows = base + np.where(nan, np.inf, as_float).reshape(blocks, SKETCH_BLOCK).argmin(axis=1)
    highs = base + np.where(nan, -np.inf, as_float).reshape(blocks, SKETCH_BLOCK).argmax(axis=1)
    positions = np.concatenate((lows, highs, [0, n - 1]))
    sketch: bytes = positions.astype("<u2").tobytes() + as_float[positions].tobytes()
    return sketch


def decode_sketches(chunks: list[tuple[bytes, bytes, int, int]]) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any]]:
    """Full chunks' sketches, given as (sketch, steps blob, first step, count), as candidate points
    in step order, each step once."""
    if not chunks:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    blocks = CHUNK_SIZE // SKETCH_BLOCK
    width = 2 * blocks + 2
    record = np.dtype([("pos", "<u2", (width,)), ("val", _F8, (width,))])
    table = np.frombuffer(b"".join(sketch for sketch, _, _, _ in chunks), dtype=record)
    positions = table["pos"].astype(np.int64)
    values = table["val"]
    # Lay each chunk out as: its first point, then every block's two extremes in position order,
    # then its last point. Blocks are consecutive, so the whole run is in order without sorting.
    lows, highs = positions[:, :blocks], positions[:, blocks : 2 * blocks]
    low_values, high_values = values[:, :blocks], values[:, blocks : 2 * blocks]
    low_first = lows <= highs
    laid = np.empty_like(positions)
    laid_values = np.empty_like(values)
    laid[:, 0], laid[:, -1] = positions[:, 2 * blocks], positions[:, 2 * blocks + 1]
    laid_values[:, 0], laid_values[:, -1] = values[:, 2 * blocks], values[:, 2 * blocks + 1]
    laid[:, 1:-1:2] = np.minimum(lows, highs)
    laid[:, 2:-1:2] = np.maximum(lows, highs)
    laid_values[:, 1:-1:2] = np.where(low_first, low_values, high_values)
    laid_values[:, 2:-1:2] = np.where(low_first, high_values, low_values)
    positions, values = laid, laid_values
    steps = positions + np.array([first for _, _, first, _ in chunks], dtype=np.int64)[:, None]
    for index, (_, steps_blob, first, count) in enumerate(chunks):
        if steps_blob[:1] != _FLAG_UNIT:  # steps with gaps: look the positions up
            steps[index] = decode_steps(steps_blob, first, count)[positions[index]]
    flat_steps, flat_values = steps.ravel(), values.ravel()
    keep = np.ones(len(flat_steps), dtype=bool)
    keep[1:] = flat_steps[1:] != flat_steps[:-1]  # an extreme that is also an end, or a flat block
    return flat_steps[keep], flat_values[keep]


def bucket_extremes(steps: npt.NDArray[np.int64], values: npt.NDArray[Any], buckets: int) -> npt.NDArray[np.int64]:
    """Indices of each step bucket's minimum and maximum, plus the ends; at most 2*buckets+2.

    Unlike `minmax_indices`, buckets split the step range evenly rather than the points: the
    points given may be a sketch, dense where chunks were read whole and sparse elsewhere.
    `steps` must be ascending.
    """
    n = len(values)
    if n == 0 or buckets <= 0:
        return np.empty(0, dtype=np.int64)
    if n <= buckets * 2:
        return np.arange(n, dtype=np.int64)
    first, span = int(steps[0]), int(steps[-1]) - int(steps[0]) + 1
    ids = ((steps - first) * buckets) // span
    as_float = values.astype(_F8)
    nan = np.isnan(as_float)
    changes = np.ones(n, dtype=bool)
    changes[1:] = ids[1:] != ids[:-1]
    starts = np.flatnonzero(changes)
    sizes = np.diff(np.append(starts, n))
    picks = []
    for side, reduce in ((np.where(nan, np.inf, as_float), np.minimum), (np.where(nan, -np.inf, as_float), np.maximum)):
        hits = np.flatnonzero(side == np.repeat(reduce.reduceat(side, starts), sizes))
        hit_ids = ids[hits]
        first_hits = np.ones(len(hits), dtype=bool)
        first_hits[1:] = hit_ids[1:] != hit_ids[:-1]
        picks.append(hits[first_hits])  # the first hit of each bucket
    low, high = picks
    # Each bucket's two picks in order, the series' ends around them; buckets are in order already.
    ordered = np.empty(2 * len(low) + 2, dtype=np.int64)
    ordered[0], ordered[-1] = 0, n - 1
    ordered[1:-1:2] = np.minimum(low, high)
    ordered[2:-1:2] = np.maximum(low, high)
    keep = np.ones(len(ordered), dtype=bool)
    keep[1:] = ordered[1:] != ordered[:-1]
    return ordered[keep]


def split_into_chunks(
    start_chunk: int, steps: npt.NDArray[np.int64], values: npt.NDArray[Any], dtype: str
) -> list[dict[str, Any]]:
    """Encode a key's series from `start_chunk` on, CHUNK_SIZE points per chunk."""
    rows = []
    for offset in range(0, len(steps), CHUNK_SIZE):
        rows.append(
            encode_chunk(
                start_chunk + offset // CHUNK_SIZE,
                steps[offset : offset + CHUNK_SIZE],
                values[offset : offset + CHUNK_SIZE],
                dtype,
            )
        )
    return rows
