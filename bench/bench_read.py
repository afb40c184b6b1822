"""Read path: one metric of 1M points, sampled history, chart downsampling, the runs table.

Store (cached in .bench/cache/): project `series` with run `big` logging `loss` and `acc` for N
steps (1M); project `table` with R runs (10,000), each with config lr (one of 5 values),
batch_size, optimizer, seed, and one history row setting summary `loss`. Everything is read
in-process through `branchline.Api` (the Store if Api is not importable yet, said in the output),
with a warm-up call and the median of repeats. Where an interpreter with mlflow is found
($BENCH_PEER_PYTHON, .bench/peers-venv, or this one), the same queries run on an MLflow SQLite
store built the same way (bench/_mlflow_child.py).

    .venv/bin/python bench/bench_read.py [--quick] [--reps 15] [--no-peers]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import BENCH_DIR, CACHE, Row, importable, machine_line, median, peer_python, print_table, run_child, spread
from _gen import cached_store, copy_store, make_spec, series, write_run
from _reader import Reader
from branchline.store import Store, writes
from branchline.store.history import minmax_indices
from branchline.vocab import RecordKind

LRS = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
LR = 1e-3
SAMPLES = 2_000
PAGE = 50
MLFLOW_POINTS = 100_000
MS = 1e3


def build(n: int, n_runs: int) -> Path:
    def make(store: Store) -> None:
        values = series(n)
        write_run(
            store, make_spec("series", "big"), np.arange(n, dtype=np.int64), {"loss": values, "acc": 1 - values / 3}
        )
        rnd = random.Random(0)
        t0 = time.time()
        for offset in range(0, n_runs, 1000):
            # One transaction per 1,000 runs: what the SDK would do in 2 transactions per run.
            with store.engine.begin() as conn:
                for i in range(offset, min(n_runs, offset + 1000)):
                    config = {
                        "lr": rnd.choice(LRS),
                        "batch_size": rnd.choice([32, 64, 128]),
                        "optimizer": rnd.choice(["adam", "sgd"]),
                        "seed": i,
                    }
                    spec = make_spec("table", f"run{i:05d}", config=config)
                    writes.begin_run(conn, spec, now=t0 + i, crash_timeout=300.0)
                    loss = rnd.random()
                    records = [
                        [1, int(RecordKind.HISTORY), 0, t0 + i, 1.0, {"loss": loss, "acc": 1 - loss}],
                        [2, int(RecordKind.EXIT), 0, "finished", 1.0],
                    ]
                    writes.apply_records(conn, spec.session_id, records, now=t0 + i)

    return cached_store(f"read-n{n}-runs{n_runs}", make)


def timed(fn: Any, reps: int) -> tuple[list[float], Any]:
    result = fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def _field(run: Any, name: str, key: str) -> Any:
    value = getattr(run, name)
    return value.get(key) if hasattr(value, "get") else value[key]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N=100k points, 1,000 runs, no peers (CI smoke)")
    parser.add_argument("--n", type=int, default=None, help="points of the big run (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=None, help="runs in the table (default 10,000)")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--store-only", action="store_true", help="read through the Store even if Api exists")
    opts = parser.parse_args()
    n = opts.n or (100_000 if opts.quick else 1_000_000)
    n_runs = opts.runs or (1_000 if opts.quick else 10_000)
    reps = opts.reps or (5 if opts.quick else 15)
    print(f"# bench_read: {n:,}-point metric, {n_runs:,}-run table, median of {reps} repeats after a warm-up")
    print(machine_line())
    cached = build(n, n_runs)
    CACHE.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench_read-", dir=CACHE))
    rows: list[Row] = []
    try:
        reader = Reader(copy_store(cached, work / "read.db"), force_store=opts.store_only)
        print(f"reading via {reader.via}")
        try:
            rows += measure(reader, n, n_runs, reps)
        finally:
            reader.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows += mlflow_rows(n, n_runs, reps, skip=opts.quick or opts.no_peers, ours=rows)
    print_table(f"reads (via {reader.via.split(' (')[0]})", rows)
    if reader.why:
        print(f"NOTE: branchline.Api is not importable yet ({reader.why}); figures are the Store's.")
    return 0


_FIGURES: dict[str, float] = {}


def measure(reader: Reader, n: int, n_runs: int, reps: int) -> list[Row]:
    rows: list[Row] = []
    lookup, run = timed(lambda: reader.run("series", "big"), reps)
    read_t, (steps, values) = timed(lambda: reader.metric(run, "loss"), reps)
    assert len(steps) == n, f"read {len(steps)} points, expected {n}"
    read_ms = median(read_t) * MS
    _FIGURES["metric_ms"] = read_ms
    rows.append(
        Row(
            f"run.metric('loss'), {n:,} points",
            read_ms,
            "ms",
            baseline=median(lookup) * MS,
            baseline_name="ms api.run(path) lookup",
            target="≤ 50 ms",
            status="PASS" if read_ms <= 50 else "MISS",
            note=f"{spread([t * MS for t in read_t])}; {values.nbytes / 1e6:.0f} MB of float64",
        )
    )
    try:
        hist_t, frame = timed(lambda: reader.history(run, SAMPLES, ["loss"]), reps)
        hist_ms = median(hist_t) * MS
        extra = hist_ms - read_ms
        rows.append(
            Row(
                f"run.history(samples={SAMPLES:,}, keys=['loss'])",
                hist_ms,
                "ms",
                baseline=read_ms,
                baseline_name="ms the read",
                ratio=hist_ms / read_ms,
                target="≤ read + 20 ms",
                status="PASS" if extra <= 20 else "MISS",
                note=f"{extra:+.1f} ms beyond the read; {len(frame):,} rows; {spread([t * MS for t in hist_t])}",
            )
        )
    except Exception as exc:
        rows.append(Row(f"run.history(samples={SAMPLES:,})", f"n/a ({type(exc).__name__}: {exc})"))
    ds_t, picked = timed(lambda: minmax_indices(values, SAMPLES), reps)
    ds_ms = median(ds_t) * MS
    rows.append(
        Row(
            f"minmax_indices {n:,} → {SAMPLES:,} buckets",
            ds_ms,
            "ms",
            baseline=median(timed(lambda: (values.min(), values.max()), reps)[0]) * MS,
            baseline_name="ms numpy min+max of the array",
            target="≤ 20 ms",
            status="PASS" if ds_ms <= 20 else "MISS",
            note=f"{len(picked):,} points kept; {spread([t * MS for t in ds_t])}",
        )
    )
    queries = [
        ("config.lr == 1e-3", {"config.lr": {"$eq": LR}}),
        ("config.lr < 1e-3", {"config.lr": {"$lt": LR}}),
    ]
    for label, filters in queries:
        try:
            page_t, page = timed(lambda f=filters: reader.runs_page("table", f, "+summary_metrics.loss", PAGE), reps)
            losses = [float(_field(r, "summary", "loss")) for r in page]
            lrs = [float(_field(r, "config", "lr")) for r in page]
            ok = (
                len(page) == PAGE
                and losses == sorted(losses)
                and all((lr == LR) if "==" in label else (lr < LR) for lr in lrs)
            )
            page_ms = median(page_t) * MS
            count_t, count = timed(lambda f=filters: reader.runs_count("table", f), reps)
            if "==" in label:
                _FIGURES["runs_ms"] = page_ms
            rows.append(
                Row(
                    f"runs: {label}, sort +summary_metrics.loss, first {PAGE} of {n_runs:,}",
                    page_ms,
                    "ms",
                    target="≤ 100 ms",
                    status=("PASS" if page_ms <= 100 else "MISS") + ("" if ok else " (WRONG PAGE)"),
                    note=f"{spread([t * MS for t in page_t])}; {count:,} match, len() {median(count_t) * MS:.1f} ms",
                )
            )
        except Exception as exc:
            rows.append(Row(f"runs: {label}, sort +summary_metrics.loss", f"n/a ({type(exc).__name__}: {exc})"[:160]))
    return rows


def mlflow_rows(n: int, n_runs: int, reps: int, *, skip: bool, ours: list[Row]) -> list[Row]:
    if skip:
        return [Row("MLflow (SQLite) same queries", "skipped (--quick / --no-peers)")]
    python = next((p for p in (peer_python(), sys.executable) if p and importable(p, "mlflow")), None)
    if python is None:
        return [Row("MLflow (SQLite) same queries", "not installed")]
    points = min(n, MLFLOW_POINTS)
    db = CACHE / "cache" / f"mlflow-points{points}-runs{n_runs}.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    if not db.exists():
        print(f"building {db.name} through MlflowClient (cached; takes minutes) ...", flush=True)
    out = run_child(
        python,
        BENCH_DIR / "_mlflow_child.py",
        {"db": str(db), "runs": n_runs, "points": points, "reps": max(3, reps // 3), "lr": LR},
        timeout=3600,
    )
    if "error" in out:
        return [Row("MLflow (SQLite) same queries", f"failed: {out['error']}"), Row("", out.get("stderr", "")[-300:])]
    scale = n / out["metric_points"]
    metric_ms = out["metric_s"] * MS
    return [
        Row(
            f"MLflow get_metric_history, {out['metric_points']:,} points",
            metric_ms,
            "ms",
            baseline=_FIGURES.get("metric_ms"),
            baseline_name=f"ms branchline ({n:,} pts)",
            ratio=(metric_ms * scale) / _FIGURES["metric_ms"] if "metric_ms" in _FIGURES else None,
            note=f"ratio is MLflow scaled ×{scale:g} to {n:,} pts ({metric_ms * scale:,.0f} ms) over branchline; "
            f"client start {out['client_s']:.2f} s",
        ),
        Row(
            f"MLflow search_runs params.lr = '0.001', order metrics.loss, first {PAGE} of {n_runs:,}",
            out["runs_s"] * MS,
            "ms",
            baseline=_FIGURES.get("runs_ms"),
            baseline_name="ms branchline",
            ratio=(out["runs_s"] * MS) / _FIGURES["runs_ms"] if "runs_ms" in _FIGURES else None,
            note=f"{out['runs_page']} runs, sorted: {out['runs_sorted']}",
        ),
    ]


if __name__ == "__main__":
    sys.exit(main())
