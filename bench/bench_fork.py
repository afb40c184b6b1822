"""Fork and rewind: O(1) branch operations, and reading through a deep lineage chain.

Store (cached in .bench/cache/): run `big` with N steps (1M) and run `small` with 1k steps, both
logging `loss` and `acc`; a chain `chain0` → `chain1` → … → `chain5` (each a fork of the previous
one, 5 levels deep, each parent holding rows past its branch point that the child must skip) whose
visible `loss` history is the same N points as `big`'s.

Measured, medians of repeats, each repeat on a fresh copy of the store (so each rewind is a
rewind of a run that was never rewound):
- `Store.begin_run` of a fork and of a rewind at mid-run, for `big` and `small`, after an untimed
  fork and rewind of `warm` on the same Store (so SQLAlchemy's statement cache is warm);
- `branchline.init(fork_from=...)` / `init(resume_from=...)` wall time, in a fresh process after an
  untimed warm-up run, fork and rewind of a third run `warm` (bench/_fork_child.py);
- full-history read of `loss` from `chain5` against `big` (through `Api`, else the Store).

    .venv/bin/python bench/bench_fork.py [--quick] [--reps 7]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import BENCH_DIR, CACHE, Row, machine_line, median, print_table, run_child, spread
from _gen import ENTITY, cached_store, copy_store, make_spec, series, url_of, write_run
from _reader import Reader
from branchline.store import Store, open_store

PROJECT = "fork"
SMALL = 1_000
DEPTH = 5
MS = 1e3


def build(n: int) -> Path:
    """The cached store for N-step runs."""

    def make(store: Store) -> None:
        values = series(n)
        acc = 1.0 - values / 3
        steps = np.arange(n, dtype=np.int64)
        write_run(store, make_spec(PROJECT, "big"), steps, {"loss": values, "acc": acc})
        for name in ("small", "warm"):  # `warm`: untimed fork and rewind before the timed ones
            write_run(store, make_spec(PROJECT, name), steps[:SMALL], {"loss": values[:SMALL], "acc": acc[:SMALL]})
        # chain k forks chain k-1 at step k*S-1 and logs up to (k+2)*S-1; the last one up to n-1.
        seg = n // (DEPTH + 1)
        for k in range(DEPTH + 1):
            first = 0 if k == 0 else k * seg
            last = n if k == DEPTH else (k + 2) * seg
            fields: dict[str, Any] = {} if k == 0 else {"fork_from": f"chain{k - 1}", "branch_step": k * seg - 1}
            write_run(
                store,
                make_spec(PROJECT, f"chain{k}", **fields),
                steps[first:last],
                {"loss": values[first:last], "acc": acc[first:last]},
            )

    return cached_store(f"fork-v2-n{n}", make)


def store_level(cached: Path, work: Path, n: int, reps: int) -> dict[str, list[float]]:
    """`Store.begin_run` seconds for fork and rewind of big and small, each rep on a fresh copy."""
    times: dict[str, list[float]] = {}
    for rep in range(reps):
        db = copy_store(cached, work / f"store-level-{rep}.db")
        store = open_store(url_of(db))
        # Untimed: compiles the fork and rewind statements into this engine's cache.
        store.begin_run(make_spec(PROJECT, f"fw{rep}", fork_from="warm", branch_step=SMALL // 2))
        store.begin_run(make_spec(PROJECT, "warm", resume_from="warm", branch_step=SMALL // 2))
        ops = [
            ("fork big", make_spec(PROJECT, f"fb{rep}", fork_from="big", branch_step=n // 2)),
            ("fork small", make_spec(PROJECT, f"fs{rep}", fork_from="small", branch_step=SMALL // 2)),
            ("rewind big", make_spec(PROJECT, "big", resume_from="big", branch_step=n // 2)),
            ("rewind small", make_spec(PROJECT, "small", resume_from="small", branch_step=SMALL // 2)),
        ]
        if rep % 2:
            ops.reverse()
        for label, spec in ops:
            t0 = time.perf_counter()
            start = store.begin_run(spec)
            times.setdefault(label, []).append(time.perf_counter() - t0)
            expected = (n // 2 if "big" in label else SMALL // 2) + 1
            assert start.starting_step == expected, (label, start.starting_step)
        store.close()
        db.unlink()
    return times


def sdk_level(cached: Path, work: Path, n: int, reps: int) -> tuple[dict[str, list[float]], list[str]]:
    """`branchline.init(fork_from=…/resume_from=…)` seconds, one fresh process per rep."""
    times: dict[str, list[float]] = {}
    errors: list[str] = []
    for rep in range(reps):
        root = work / f"sdk-{rep}"
        copy_store(cached, root / "branchline" / "store.db")
        ops = [
            ["fork big", "fork", "big", n // 2],
            ["fork small", "fork", "small", SMALL // 2],
            ["rewind big", "rewind", "big", n // 2],
            ["rewind small", "rewind", "small", SMALL // 2],
        ]
        if rep % 2:
            ops.reverse()
        out = run_child(
            sys.executable,
            BENCH_DIR / "_fork_child.py",
            {"dir": str(root), "project": PROJECT, "entity": ENTITY, "ops": ops, "warm_step": SMALL // 2},
            timeout=600,
        )
        if "error" in out:
            errors.append(f"{out['error']}: {out.get('stderr', '')[-800:]}")
        for label, *_ in ops:
            if label in out:
                times.setdefault(label, []).append(float(out[label]))
        shutil.rmtree(root, ignore_errors=True)
    return times, errors


def deep_read(cached: Path, work: Path, reps: int, force_store: bool) -> tuple[dict[str, list[float]], str]:
    db = copy_store(cached, work / "read.db")
    reader = Reader(db, force_store=force_store)
    try:
        flat = reader.run(PROJECT, "big")
        deep = reader.run(PROJECT, f"chain{DEPTH}")
        a_steps, a_vals = reader.metric(flat, "loss")
        b_steps, b_vals = reader.metric(deep, "loss")
        assert np.array_equal(a_steps, b_steps) and np.array_equal(a_vals, b_vals), "fork chain reads differently"
        times: dict[str, list[float]] = {"flat": [], "deep": []}
        for rep in range(reps):
            order = [("flat", flat), ("deep", deep)]
            if rep % 2:
                order.reverse()
            for label, run in order:
                t0 = time.perf_counter()
                reader.metric(run, "loss")
                times[label].append(time.perf_counter() - t0)
        return times, reader.via
    finally:
        reader.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N=100k, fewer repeats (CI smoke)")
    parser.add_argument("--n", type=int, default=None, help="steps of the big run (default 1,000,000)")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--store-only", action="store_true", help="read through the Store even if Api exists")
    opts = parser.parse_args()
    n = opts.n or (100_000 if opts.quick else 1_000_000)
    reps = opts.reps or (3 if opts.quick else 7)
    print(f"# bench_fork: big run {n:,} steps, small run {SMALL:,} steps, fork chain {DEPTH} deep, {reps} repeats")
    print(machine_line())
    cached = build(n)
    CACHE.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench_fork-", dir=CACHE))
    try:
        store_t = store_level(cached, work, n, reps)
        sdk_t, errors = sdk_level(cached, work, n, max(3, reps // 2) if not opts.quick else 2)
        read_t, via = deep_read(cached, work, reps * 2, opts.store_only)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows: list[Row] = []
    for level, times in (("Store.begin_run", store_t), ("init()", sdk_t)):
        for kind in ("fork", "rewind"):
            big = median(times.get(f"{kind} big", [])) * MS
            small = median(times.get(f"{kind} small", [])) * MS
            ratio = big / small
            ok = big <= 20 and small <= 20
            rows.append(
                Row(
                    f"{level}: {kind} of {n:,}-step run",
                    big,
                    "ms",
                    baseline=small,
                    baseline_name=f"ms ({kind} of {SMALL:,}-step run)",
                    ratio=ratio,
                    target="≤ 20 ms each, ratio ≤ 2×",
                    status="PASS" if ok and ratio <= 2 else "MISS",
                    note=f"big {spread([t * MS for t in times.get(f'{kind} big', [])])} "
                    f"small {spread([t * MS for t in times.get(f'{kind} small', [])])}",
                )
            )
    flat = median(read_t["flat"]) * MS
    deep = median(read_t["deep"]) * MS
    rows.append(
        Row(
            f"read `loss` ({n:,} pts) from a fork {DEPTH} deep",
            deep,
            "ms",
            baseline=flat,
            baseline_name="ms unforked run",
            ratio=deep / flat,
            target="≤ 2×",
            status="PASS" if deep / flat <= 2 else "MISS",
            note=f"via {via}; identical arrays checked",
        )
    )
    print_table("fork and rewind", rows)
    for error in errors:
        print(f"SDK child failed: {error}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
