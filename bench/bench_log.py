"""Write path: `log()` cost against the msgpack + os.write floor, finish, start-up, disk, memory.

Every figure comes from a fresh process (bench/_log_child.py), repeated and interleaved (rep 1 of
every config, then rep 2, ...); the table shows medians. Peers (wandb offline, MLflow on SQLite,
trackio) are measured the same way when an interpreter that has them is found: $BENCH_PEER_PYTHON,
else .bench/peers-venv/bin/python, else this one.

    .venv/bin/python bench/bench_log.py [--quick] [--reps 3] [--n 100000] [--no-peers]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import (
    BENCH_DIR,
    CACHE,
    Row,
    dir_bytes,
    importable,
    machine_line,
    median,
    peer_python,
    print_table,
    spread,
)
from _common import run_child as _run_child

CHILD = BENCH_DIR / "_log_child.py"
PEERS = ("wandb", "mlflow", "trackio")
#: MLflow on SQLite takes ~11 ms per step here; 100k steps would take ~18 min per repeat.
MLFLOW_N = 2_000
MiB = 1024 * 1024


def run_child(python: str, args: dict[str, Any]) -> dict[str, Any]:
    result = _run_child(python, CHILD, args, timeout=1800)
    if "error" in result:
        print(f"  ! {args['config']} {args['mode']}: {result['error']}\n{result.get('stderr', '')}", file=sys.stderr)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small N, one repeat, no peers (CI smoke)")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--n", type=int, default=None, help="steps per run (default 100,000; 5,000 with --quick)")
    parser.add_argument("--no-peers", action="store_true")
    opts = parser.parse_args()
    n = opts.n or (5_000 if opts.quick else 100_000)
    reps = opts.reps or (1 if opts.quick else 3)
    print(f"# bench_log: N={n:,} steps of 10 floats, {reps} interleaved repeats in fresh processes")
    print(machine_line())

    ours = sys.executable
    configs: dict[str, tuple[str, int]] = {
        "floor": (ours, n),
        "branchline": (ours, n),
        "branchline-offline": (ours, n),
    }
    missing: dict[str, str] = {}
    if not (opts.quick or opts.no_peers):
        candidates = [p for p in (peer_python(), ours) if p]
        for peer in PEERS:
            for python in candidates:
                version = importable(python, peer)
                if version:
                    configs[f"{peer}"] = (python, min(n, MLFLOW_N) if peer == "mlflow" else n)
                    print(f"{peer} {version} ({python})")
                    break
            else:
                missing[peer] = "not installed"
    else:
        missing = {p: "skipped (--quick / --no-peers)" for p in PEERS}

    CACHE.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench_log-", dir=CACHE))
    loops: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    fresh: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    existing: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    # (branchline-offline only runs the loop: it is a diagnostic for the log() row.)
    try:
        for rep in range(reps):
            for config, (python, steps) in configs.items():
                store = work / f"{config}-loop-{rep}"
                res = run_child(python, {"config": config, "mode": "loop", "n": steps, "dir": str(store), "seed": rep})
                res["disk_bytes"] = dir_bytes(store)
                loops[config].append(res)
                shutil.rmtree(store, ignore_errors=True)
                if config == "branchline-offline":
                    continue
                # Start-up: a 1-step script in an empty directory, then again in the store it left.
                trivial = work / f"{config}-trivial-{rep}"
                res = run_child(python, {"config": config, "mode": "trivial", "dir": str(trivial)})
                res["disk_bytes"] = dir_bytes(trivial)
                fresh[config].append(res)
                existing[config].append(run_child(python, {"config": config, "mode": "trivial", "dir": str(trivial)}))
                shutil.rmtree(trivial, ignore_errors=True)
            done = loops["branchline"][-1]
            print(
                f"rep {rep + 1}/{reps}: branchline {done.get('log_us', float('nan')):.2f} µs/step, "
                f"floor {loops['floor'][-1].get('log_us', float('nan')):.2f} µs/step"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    report(configs, loops, fresh, existing, missing)
    return 0


def _med(results: list[dict[str, Any]], key: str) -> float:
    return median(float(r[key]) for r in results if r.get(key) is not None)


def _all(results: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in results if r.get(key) is not None]


def report(
    configs: dict[str, tuple[str, int]],
    loops: dict[str, list[dict[str, Any]]],
    fresh: dict[str, list[dict[str, Any]]],
    existing: dict[str, list[dict[str, Any]]],
    missing: dict[str, str],
) -> None:
    n = configs["branchline"][1]
    floor_us = _med(loops["floor"], "log_us")
    ours = loops["branchline"]
    log_us = _med(ours, "log_us")
    # Each repeat ran branchline right after the floor, so pairing them cancels most load drift.
    paired = [
        float(o["log_us"]) / float(f["log_us"])
        for o, f in zip(ours, loops["floor"], strict=True)
        if o.get("log_us") and f.get("log_us")
    ]
    ratio = median(paired)
    finish_s = _med(ours, "finish_s")
    reads = [r.get("n_read") for r in ours]
    complete = all(r == n for r in reads)
    disk = _med(ours, "disk_bytes") / (n * 10)
    fixed = _med(fresh["branchline"], "disk_bytes")
    marginal = (_med(ours, "disk_bytes") - fixed) / (n * 10 - 10)
    floor_disk = _med(loops["floor"], "disk_bytes") / (n * 10)
    ii_fresh = _med(fresh["branchline"], "import_init_s")
    ii_existing = _med(existing["branchline"], "import_init_s")
    rows = [
        Row(
            "log() of a 10-float dict",
            log_us,
            "µs/step",
            baseline=floor_us,
            baseline_name="µs floor",
            ratio=ratio,
            target="≤ 2× floor",
            status="PASS" if ratio <= 2 else "MISS",
            note=f"ratio = median of per-repeat ratios {[round(r, 2) for r in paired]} "
            f"(ratio of medians {log_us / floor_us:.2f}×); ours {spread(_all(ours, 'log_us'))}, "
            f"floor {spread(_all(loops['floor'], 'log_us'))}",
        ),
        Row(
            "log(), offline mode (diagnostic: no writer child)",
            _med(loops["branchline-offline"], "log_us"),
            "µs/step",
            baseline=floor_us,
            baseline_name="µs floor",
            ratio=median(
                float(o["log_us"]) / float(f["log_us"])
                for o, f in zip(loops["branchline-offline"], loops["floor"], strict=True)
                if o.get("log_us") and f.get("log_us")
            ),
            note="same fast path, journal only: the gap to the row above is the writer process competing for CPU",
        ),
        Row(
            f"finish() after {n:,} steps, all in store",
            finish_s,
            "s",
            baseline=_med(loops["floor"], "finish_s"),
            baseline_name="s floor fsync",
            target="≤ 0.5 s",
            status=("PASS" if finish_s <= 0.5 else "MISS") + ("" if complete else " (INCOMPLETE)"),
            note=f"{spread(_all(ours, 'finish_s'))}; read back metric_0: {reads} of {n:,}",
        ),
        Row(
            "loop + finish (time to durable)",
            _med(ours, "loop_finish_s"),
            "s",
            baseline=_med(loops["floor"], "loop_finish_s"),
            baseline_name="s floor",
            ratio=_med(ours, "loop_finish_s") / _med(loops["floor"], "loop_finish_s"),
            note=spread(_all(ours, "loop_finish_s")),
        ),
        Row(
            "import + init(), fresh store",
            ii_fresh,
            "s",
            baseline=_med(fresh["floor"], "import_init_s"),
            baseline_name="s floor (import msgpack, open)",
            target="≤ 0.3 s",
            status="PASS" if ii_fresh <= 0.3 else "MISS",
            note=f"{spread(_all(fresh['branchline'], 'import_init_s'))}; import "
            f"{_med(fresh['branchline'], 'import_s'):.3f} s; process start → init returned "
            f"{_med(fresh['branchline'], 'start_to_init'):.3f} s",
        ),
        Row(
            "import + init(), existing store",
            ii_existing,
            "s",
            baseline=_med(existing["floor"], "import_init_s"),
            baseline_name="s floor",
            target="≤ 0.3 s",
            status="PASS" if ii_existing <= 0.3 else "MISS",
            note=f"{spread(_all(existing['branchline'], 'import_init_s'))}; process start → init returned "
            f"{_med(existing['branchline'], 'start_to_init'):.3f} s",
        ),
        Row(
            "1-step script, whole process (fresh / existing store)",
            f"{_med(fresh['branchline'], 'spawn_wall'):.3f} / {_med(existing['branchline'], 'spawn_wall'):.3f} s",
            baseline=f"{_med(fresh['floor'], 'spawn_wall'):.3f}",
            baseline_name="s floor",
        ),
        Row(
            "disk per numeric point",
            disk,
            "B",
            baseline=floor_disk,
            baseline_name="B floor (msgpack)",
            ratio=disk / floor_disk,
            target="≤ 10 B",
            status="PASS" if disk <= 10 else "MISS",
            note=f"marginal {marginal:.2f} B (empty-store overhead {fixed / 1024:.0f} KiB)",
        ),
        Row(
            "peak RSS: training process / writer child / tree",
            f"{_med(ours, 'rss_main') / MiB:.0f} / {_med(ours, 'rss_children') / MiB:.0f} / "
            f"{_med(ours, 'tree_rss_peak') / MiB:.0f}",
            "MiB",
            baseline=f"{_med(loops['floor'], 'rss_main') / MiB:.0f}",
            baseline_name="MiB floor",
            note=f"includes the {n:,} pre-built dicts: {_med(ours, 'rss_after_rows') / MiB:.0f} MiB before import",
        ),
    ]
    print_table("branchline vs the floor (same run)", rows)

    peer_rows = []
    for name in ("floor", "branchline", *PEERS):
        if name in missing:
            peer_rows.append(Row(name, missing[name]))
            continue
        res = loops[name]
        steps = configs[name][1]
        note = "" if steps == n else f"⚠ N={steps:,} (too slow for {n:,})"
        got = [r.get("n_read") for r in res]
        read_note = "no offline read API" if name == "wandb" else f"read back {got}"
        peer_rows.append(
            Row(
                name,
                _med(res, "log_us"),
                "µs/step",
                baseline=floor_us,
                baseline_name="µs floor",
                ratio=_med(res, "log_us") / floor_us,
                note=_peer_note(res, fresh[name], existing[name], steps, f"{read_note} {note}".strip()),
            )
        )
    print_table("peers, measured the same way in the same run", peer_rows)


def _peer_note(
    res: list[dict[str, Any]], fresh: list[dict[str, Any]], existing: list[dict[str, Any]], steps: int, tail: str
) -> str:
    start = f"import+init fresh {_med(fresh, 'import_init_s'):.2f} s / existing {_med(existing, 'import_init_s'):.2f} s"
    disk = f"disk {_med(res, 'disk_bytes') / (steps * 10):.1f} B/pt"
    rss = f"RSS main {_med(res, 'rss_main') / MiB:.0f} MiB, tree {_med(res, 'tree_rss_peak') / MiB:.0f} MiB"
    return f"finish {_med(res, 'finish_s'):.3f} s; {start}; {disk}; {rss}; {tail}"


if __name__ == "__main__":
    sys.exit(main())
