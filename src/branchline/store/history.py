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
]

CHUNK_SIZE = 2048
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
    }


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
