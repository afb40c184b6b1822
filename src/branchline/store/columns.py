"""One batch's history as columns: numeric points per (stream, key) written as chunks, other values per step."""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, func, select
from sqlalchemy.engine import Row

from branchline.store import history as hist
from branchline.store.schema import history_chunks
from branchline.store.sql import upsert

__all__ = ["Columns", "write_numeric"]

Steps = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


class Columns:
    """Numeric points and other values of one batch, by stream and flattened key."""

    def __init__(self) -> None:
        self.numeric: dict[tuple[int, str], tuple[list[int], list[Any]]] = {}
        self.objects: list[dict[str, Any]] = []
        # Rows of plain floats, grouped by their key set: transposed with numpy in one pass.
        self.float_rows: dict[tuple[str, ...], tuple[list[int], list[float], list[float], list[tuple[float, ...]]]] = {}
        self.parts: dict[tuple[int, str], list[tuple[Steps, Floats]]] = {}

    def add_float_row(self, step: int, ts: float, runtime: float, data: dict[str, float]) -> None:
        group = self.float_rows.get(tuple(data))
        if group is None:
            group = self.float_rows[tuple(data)] = ([], [], [], [])
        group[0].append(step)
        group[1].append(ts)
        group[2].append(runtime)
        group[3].append(tuple(data.values()))

    def add_block(self, keys: list[str], steps: Steps, stamps: Floats, runtimes: Floats, matrix: Floats) -> None:
        """Float rows as columns: `matrix` holds one row per step and one column per key."""
        columns = [("_timestamp", stamps), ("_runtime", runtimes)]
        columns.extend((key, matrix[:, j]) for j, key in enumerate(keys))
        for key, column in columns:
            self.parts.setdefault((0, key), []).append((steps, column))

    def transpose_float_rows(self) -> None:
        for keys, (steps_list, ts_list, rt_list, values) in self.float_rows.items():
            matrix = np.array(values, dtype=np.float64).reshape(len(values), len(keys))
            steps = np.array(steps_list, dtype=np.int64)
            self.add_block(list(keys), steps, np.array(ts_list), np.array(rt_list), matrix)
        self.float_rows = {}

    def add(self, inc_id: str, stream: int, step: int, row: dict[str, Any], prefix: str = "") -> None:
        # The hot loop of the writer: plain numbers go straight into their column.
        numeric = self.numeric
        for name, value in row.items():
            key = prefix + name
            kind = type(value)
            if kind is float or kind is bool or (kind is int and -(2**63) <= value < 2**63):
                col = numeric.get((stream, key))
                if col is None:
                    col = numeric[(stream, key)] = ([], [])
                col[0].append(step)
                col[1].append(value)
            elif kind is dict and value and not value.get("_type"):
                self.add(inc_id, stream, step, value, key + ".")
            else:
                self.objects.append(
                    {
                        "incarnation_id": inc_id,
                        "stream": stream,
                        "key": key,
                        "step": step,
                        "value": msgpack.packb(value),
                    }
                )

    def column(self, stream: int, key: str) -> tuple[Steps, npt.NDArray[Any], str]:
        """One key's points of this batch, in step order, with their stored dtype code."""
        parts = list(self.parts.get((stream, key), ()))
        dtype = "t" if key in hist.TIME_KEYS else "f"
        listed = self.numeric.get((stream, key))
        if listed is not None:
            dtype = hist.merge_dtypes(dtype, hist.dtype_of(key, listed[1])) if parts else hist.dtype_of(key, listed[1])
            array = hist.to_array(listed[1], "f" if dtype == "t" else dtype)
            parts.append((np.array(listed[0], dtype=np.int64), array))
        if len(parts) == 1:
            return parts[0][0], parts[0][1], dtype
        steps = np.concatenate([p[0] for p in parts])
        values = np.concatenate([p[1].astype(np.float64) if dtype in ("f", "t") else p[1] for p in parts])
        order = np.argsort(steps, kind="stable")
        return steps[order], values[order], dtype


def _tails(conn: Connection, inc_id: str, stream: int, keys: list[str]) -> tuple[dict[str, int], dict[str, Row[Any]]]:
    """Each key's last chunk number, and that chunk's row where it is not full yet (an open tail)."""
    c = history_chunks.c
    last_chunks: dict[str, int] = {}
    tails: dict[str, Row[Any]] = {}
    for offset in range(0, len(keys), 500):
        part = keys[offset : offset + 500]
        for key, chunk in conn.execute(
            select(c.key, func.max(c.chunk))
            .where(c.incarnation_id == inc_id, c.stream == stream, c.key.in_(part))
            .group_by(c.key)
        ):
            last_chunks[key] = int(chunk)
        wanted = [k for k in part if k in last_chunks]
        if not wanted:
            continue
        for row in conn.execute(
            select(history_chunks).where(
                c.incarnation_id == inc_id, c.stream == stream, c.key.in_(wanted), c.count < hist.CHUNK_SIZE
            )
        ):
            if row.chunk == last_chunks[row.key]:
                tails[row.key] = row
    return last_chunks, tails


def _key_chunks(cols: Columns, stream: int, key: str, last_chunk: int, tail: Row[Any] | None) -> list[dict[str, Any]]:
    """A key's new points merged into its open tail, as encoded chunk rows."""
    steps, values, dtype = cols.column(stream, key)
    start = last_chunk + 1
    if tail is not None:
        dtype = hist.merge_dtypes(tail.dtype, dtype)
        # `count` via the mapping: on a Row, `.count` is tuple.count.
        old_steps = hist.decode_steps(tail.steps, tail.first_step, tail._mapping["count"])
        old_values = hist.decode_values(tail.vals, tail.dtype)
        keep = steps > old_steps[-1]  # replayed or out-of-order points never duplicate
        steps = np.concatenate((old_steps, steps[keep]))
        values = np.concatenate((old_values.astype(values.dtype if dtype != "f" else np.float64), values[keep]))
        start = tail.chunk
    if dtype == "f":
        values = values.astype(np.float64)
    return list(hist.split_into_chunks(start, steps, values, dtype))


def write_numeric(conn: Connection, inc_id: str, cols: Columns) -> None:
    """Store the batch's numeric columns as history chunks, continuing each key's open tail."""
    cols.transpose_float_rows()
    if not cols.numeric and not cols.parts:
        return
    by_stream: dict[int, list[str]] = {}
    for stream, key in {**cols.numeric, **cols.parts}:
        by_stream.setdefault(stream, []).append(key)
    rows: list[dict[str, Any]] = []
    for stream, keys in by_stream.items():
        last_chunks, tails = _tails(conn, inc_id, stream, keys)
        for key in keys:
            for encoded in _key_chunks(cols, stream, key, last_chunks.get(key, -1), tails.get(key)):
                rows.append({"incarnation_id": inc_id, "stream": stream, "key": key, **encoded})
    upsert(conn, history_chunks, rows)
