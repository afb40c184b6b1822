"""The W&B `file_stream` history path, in process: float rows go to the store as column blocks.

Consecutive history lines of plain floats with one key set become a ROW_BLOCK record (as our
SDK's writer sends them), everything else a HISTORY record per line, in line order; what the store
reads back is the same either way, and a replayed or overlapping chunk stores no row twice.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from pathlib import Path

from branchline.runspec import RunSpec
from branchline.server.auth import Principal
from branchline.server.wandb import filestream
from branchline.server.wandb.context import WandbContext
from branchline.store import Store, open_store
from branchline.vocab import RecordKind


def _line(step: int, **values: object) -> str:
    return json.dumps({"_step": step, "_runtime": step / 10, "_timestamp": 1.7e9 + step, **values})


LINES = [
    # The client writes each line's keys in any order: a block is a key set.
    *(_line(i, a=i + 0.5, b=-i - 0.25) if i % 2 else _line(i, b=-i - 0.25, a=i + 0.5) for i in range(5)),
    _line(5, a=6),  # an int: the per-row path keeps its type
    _line(6, a=6.5, b=-6.25),
    _line(7, a=7.5, b=-7.25),
    _line(8, a=8.5, c=1.5),  # another key set, alone
    _line(9, a=float("nan")),  # NaN, which only the standard parser reads
    _line(10, a=10.5, nested={"x": 1.5}),
    _line(11, a=11.5, b=-11.25),
    "not json",
    _line(12, a=12.5, b=-12.25),
]


def test_float_rows_become_blocks_in_line_order() -> None:
    records = filestream._history(0, LINES)
    kinds = [RecordKind(r[1]).name for r in records]
    assert kinds == ["ROW_BLOCK", "HISTORY", "ROW_BLOCK", "HISTORY", "HISTORY", "HISTORY", "ROW_BLOCK"]
    # A block's sequence is its last row's; a line that is not JSON is skipped, not stored.
    assert [r[0] for r in records] == [5, 6, 8, 9, 10, 11, 14]
    assert records[0][2] == ["b", "a"]  # the first row's order


def _store_with_run(tmp_path: Path) -> tuple[Store, WandbContext, str]:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    spec = RunSpec("alice", "p", "r", secrets.token_hex(8), secrets.token_hex(8), started_at=time.time())
    store.begin_run(spec)
    ctx = WandbContext(store, Principal("local", local=True, admin=True), "http://x", None, threading.Lock())  # type: ignore[arg-type]
    return store, ctx, spec.incarnation_id


def test_blocks_store_every_row_once_across_overlapping_chunks(tmp_path: Path) -> None:
    store, ctx, inc = _store_with_run(tmp_path)
    try:
        for offset, end in ((0, 7), (0, 7), (3, 10), (9, len(LINES))):  # a retry, overlaps
            ctx.apply_lines(inc, "history", filestream._history(offset, LINES[offset:end]))
        steps, values = store.read_series(inc, "a")
        assert steps.tolist() == list(range(13))
        expected = [0.5, 1.5, 2.5, 3.5, 4.5, 6, 6.5, 7.5, 8.5, math.nan, 10.5, 11.5, 12.5]
        assert [v for v in values.tolist() if v == v] == [v for v in expected if v == v] and math.isnan(values[9])
        assert store.read_series(inc, "b")[0].tolist() == [0, 1, 2, 3, 4, 6, 7, 11, 12]
        assert store.read_series(inc, "b")[1].tolist()[:5] == [-0.25, -1.25, -2.25, -3.25, -4.25]
        assert store.read_series(inc, "c")[1].tolist() == [1.5]
        assert store.read_series(inc, "nested.x")[0].tolist() == [10]
        assert store.read_series(inc, "_runtime")[1].tolist()[:3] == [0.0, 0.1, 0.2]
        run = store.require_run("alice", "p", "r")
        assert run.last_step == 12 and run.summary["a"] == 12.5 and run.summary["b"] == -12.25
    finally:
        store.close()
