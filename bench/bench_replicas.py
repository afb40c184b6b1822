"""Scale-out: 200 concurrent runs × 2,000 steps × 10 floats through HAProxy to `branchline server`
replicas on one PostgreSQL database (issue 17).

The deployment is tests/replica_cluster.py's (the one docs/self-hosting.md describes): replicas on
loopback ports behind Debian's HAProxy, a fresh PostgreSQL database, moto's S3 server for blobs.
Three phases, each on a fresh deployment:

1. `1 replica`: the same load against one replica behind the same load balancer (the baseline);
2. `3 replicas`: the load spread over three;
3. `3 replicas, one killed`: SIGKILL the replica holding the background lease once 40% of the
   batches have gone through; HAProxy routes around it, the clients' retries land elsewhere.

The clients are driver processes with one thread per run, each sending what the SDK's writer
sends, through the SDK's own `HttpSink` (msgpack + gzip, its retry policy): a ROW_SCHEMA record,
then ROW_BLOCK records of `--batch` steps (100: what the writer finds in the journal each 0.1 s
poll when training logs 1,000 steps/s), then the EXIT record. A batch that still fails after the
sink's retries is sent again after a pause, as the writer does from its journal. Reported: points/s
(all points / wall time from the first send to the last acknowledgement), p50/p99 of a batch's
latency as the client sees it (retries included), peak RSS per replica, HAProxy's per-replica
request and 5xx counts, and, read back from PostgreSQL, every run's 10 series: steps lost and steps
duplicated (expected 0 and 0), values compared exactly.

    .venv/bin/python bench/bench_replicas.py [--quick] [--runs 200] [--steps 2000] [--drivers 4]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import REPO, Row, fmt, machine_line, print_table

sys.path.insert(0, str(REPO))  # the deployment helper lives with the tests that use it too

KEYS = [f"metric_{k}" for k in range(10)]
PROJECT = "bench"


def expected_values(run: int, steps: np.ndarray) -> np.ndarray:
    """The (steps × 10) matrix run `run` logs: exact in binary floating point, distinct per run and key."""
    return run * 1e6 + steps[:, None] * 0.5 + np.arange(len(KEYS))[None, :] * 0.25


# -- the driver: a process of client threads ---------------------------------------------------------
def _one_run(args: dict[str, Any], run: int, out: dict[str, Any], go: threading.Event) -> None:
    from branchline.runspec import RunSpec
    from branchline.sdk.http_sink import HttpSink
    from branchline.vocab import RecordKind

    steps, batch = int(args["steps"]), int(args["batch"])
    sink = HttpSink(args["base_url"], args["api_key"])
    spec = RunSpec(
        entity=args["entity"],
        project=PROJECT,
        run_id=f"r{run:04d}",
        incarnation_id=secrets.token_hex(8),
        session_id=secrets.token_hex(8),
        host="bench",
        started_at=time.time(),
    )
    latencies: list[float] = []
    resent = 0

    def deliver(records: list[list[Any]]) -> int:
        nonlocal resent
        t0 = time.perf_counter()
        while True:
            try:
                applied = sink.apply(spec.session_id, records)
                break
            except Exception:  # the writer keeps the records in its journal and tries again
                resent += 1
                time.sleep(0.5)
        latencies.append(time.perf_counter() - t0)
        return applied

    go.wait()
    began = time.time()
    while True:
        try:
            sink.begin_run(spec)
            break
        except Exception:
            resent += 1
            time.sleep(0.5)
    seq = 1
    pending: list[list[Any]] = [[seq, int(RecordKind.ROW_SCHEMA), 1, KEYS]]
    for first in range(0, steps, batch):
        step_range = np.arange(first, min(first + batch, steps), dtype=np.int64)
        seqs = seq + 1 + np.arange(len(step_range), dtype=np.int64)
        seq = int(seqs[-1])
        stamps = began + step_range * 1e-3
        block = [
            seq,
            int(RecordKind.ROW_BLOCK),
            KEYS,
            seqs.astype("<i8").tobytes(),
            step_range.astype("<i8").tobytes(),
            stamps.astype("<f8").tobytes(),
            (step_range * 1e-3).astype("<f8").tobytes(),
            expected_values(run, step_range).astype("<f8").tobytes(),
        ]
        deliver([*pending, block])
        pending = []
    seq += 1
    applied = deliver([[seq, int(RecordKind.EXIT), 0, "finished", steps * 1e-3]])
    sink.close()
    out[spec.run_id] = {
        "began": began,
        "ended": time.time(),
        "latencies": latencies,
        "resent": resent,
        "applied": applied,
        "final_seq": seq,
    }


def driver(args: dict[str, Any]) -> None:
    """Run `args["runs"]` client threads; print `ready`, wait for `go` on stdin, then one JSON line."""
    out: dict[str, Any] = {}
    go = threading.Event()
    threads = [threading.Thread(target=_one_run, args=(args, run, out, go), daemon=True) for run in args["run_indices"]]
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    sys.stdin.readline()
    go.set()
    for thread in threads:
        thread.join()
    print(json.dumps(out), flush=True)


# -- the orchestrator -----------------------------------------------------------------------------------
def _sample_rss(cluster: Any, stop: threading.Event, peaks: dict[str, float]) -> None:
    while not stop.is_set():
        for name, mib in cluster.rss_mib().items():
            peaks[name] = max(peaks.get(name, 0.0), mib)
        stop.wait(0.5)


def _verify(store_url: str, entity: str, runs: int, steps: int) -> dict[str, int]:
    """Read every run's series back from PostgreSQL: steps lost, duplicated, wrong values, unfinished runs."""
    from branchline.store import open_store

    lost = duplicated = wrong = unfinished = 0
    want_steps = np.arange(steps, dtype=np.int64)
    with open_store(store_url) as store:
        for run in range(runs):
            view = store.get_run(entity, PROJECT, f"r{run:04d}")
            if view is None:
                lost += steps * len(KEYS)
                continue
            unfinished += view.state != "finished"
            want = expected_values(run, want_steps)
            for k, key in enumerate(KEYS):
                got_steps, got_values = store.read_series(view.incarnation_id, key)
                unique = np.unique(got_steps)
                duplicated += len(got_steps) - len(unique)
                lost += len(np.setdiff1d(want_steps, unique))
                if len(got_steps) == steps and np.array_equal(got_steps, want_steps):
                    wrong += int(np.count_nonzero(np.asarray(got_values, dtype=np.float64) != want[:, k]))
    return {"lost": lost, "duplicated": duplicated, "wrong": wrong, "unfinished": unfinished}


def phase(name: str, replicas: int, kill_at: float | None, opts: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from tests.replica_cluster import USER, replica_cluster

    runs, steps, batch = opts.runs, opts.steps, opts.batch
    requests_expected = runs * (2 + -(-steps // batch))  # begin, the blocks, the exit
    with replica_cluster(workdir / name.replace(" ", "-").replace(",", ""), replicas=replicas) as cluster:
        per_driver = [list(range(runs))[i :: opts.drivers] for i in range(opts.drivers)]
        drivers = []
        for indices in per_driver:
            args = {
                "base_url": cluster.base_url,
                "api_key": cluster.api_key,
                "entity": USER,
                "steps": steps,
                "batch": batch,
                "run_indices": indices,
            }
            drivers.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--driver", json.dumps(args)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for proc in drivers:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        before = {n: int(s["stot"]) for n, s in cluster.lb.stats().items()}
        peaks: dict[str, float] = {}
        stop = threading.Event()
        sampler = threading.Thread(target=_sample_rss, args=(cluster, stop, peaks), daemon=True)
        sampler.start()
        for proc in drivers:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        killed = takeover = None
        if kill_at is not None:
            while sum(int(s["stot"]) for s in cluster.lb.stats().values()) - sum(before.values()) < (
                kill_at * requests_expected
            ):
                time.sleep(0.05)
            killed = cluster.lease_holder()
            t_kill = time.monotonic()
            cluster.kill(killed)
            cluster.lease_holder(timeout=60)
            takeover = time.monotonic() - t_kill
        results: dict[str, Any] = {}
        for proc in drivers:
            out, _ = proc.communicate(timeout=3600)
            results.update(json.loads(out.strip().splitlines()[-1]))
        stop.set()
        sampler.join()
        stats = cluster.lb.stats()
        check = _verify(cluster.store_url, USER, runs, steps)
    began = min(r["began"] for r in results.values())
    ended = max(r["ended"] for r in results.values())
    latencies = sorted(x for r in results.values() for x in r["latencies"])
    return {
        "name": name,
        "replicas": replicas,
        "wall": ended - began,
        "points_per_s": runs * steps * len(KEYS) / (ended - began),
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
        "batches": len(latencies),
        "resent": sum(r["resent"] for r in results.values()),
        "not_acknowledged": sum(r["applied"] != r["final_seq"] for r in results.values()),
        "rss_peak_mib": peaks,
        "haproxy": {
            n: {"requests": int(s["stot"]) - before.get(n, 0), "5xx": int(s["hrsp_5xx"] or 0), "status": s["status"]}
            for n, s in stats.items()
        },
        "killed": killed,
        "takeover_s": takeover,
        **check,
    }


def report(results: list[dict[str, Any]], opts: argparse.Namespace) -> None:
    base = results[0]
    rows = []
    for r in results:
        ratio = r["points_per_s"] / base["points_per_s"]
        rss = ", ".join(f"{n} {fmt(v)}" for n, v in sorted(r["rss_peak_mib"].items()))
        lb = ", ".join(
            f"{n} {v['requests']:,} req/{v['5xx']} 5xx/{v['status']}" for n, v in sorted(r["haproxy"].items())
        )
        intact = r["lost"] == 0 and r["duplicated"] == 0 and r["wrong"] == 0 and r["unfinished"] == 0
        rows.append(
            Row(
                f"{r['name']}: points/s",
                r["points_per_s"],
                "pts/s",
                baseline=base["points_per_s"] if r is not base else None,
                baseline_name=f"({base['name']})",
                ratio=ratio if r is not base else None,
                note=f"{fmt(r['wall'])} s for {opts.runs}×{opts.steps}×10",
            )
        )
        rows.append(
            Row(
                f"{r['name']}: batch latency p50 / p99",
                f"{fmt(r['p50_ms'])} / {fmt(r['p99_ms'])}",
                "ms",
                note=f"{r['batches']:,} batches of {opts.batch} steps; {r['resent']} sent again after the sink gave up",
            )
        )
        rows.append(Row(f"{r['name']}: peak RSS per replica", rss, "MiB", note=f"HAProxy: {lb}"))
        kill_note = ""
        if r["killed"]:
            kill_note = f"; killed {r['killed']} (lease holder), lease taken over in {fmt(r['takeover_s'])} s"
        rows.append(
            Row(
                f"{r['name']}: steps lost / duplicated",
                f"{r['lost']} / {r['duplicated']}",
                target="0 / 0",
                status="PASS" if intact else "MISS",
                note=f"{r['wrong']} wrong values, {r['unfinished']} runs not finished, "
                f"{r['not_acknowledged']} runs not fully acknowledged{kill_note}",
            )
        )
    print(machine_line())
    print_table(f"Scale-out through HAProxy ({opts.runs} runs × {opts.steps} steps × 10 floats)", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--driver", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="20 runs × 200 steps (a smoke run)")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100, help="steps per request (default 100)")
    parser.add_argument("--drivers", type=int, default=4, help="client processes (threads: runs / drivers each)")
    parser.add_argument("--phases", default="1,3,3k", help="which phases: 1 (one replica), 3, 3k (one killed)")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    opts = parser.parse_args()
    if opts.driver:
        driver(json.loads(opts.driver))
        return
    from tests.replica_cluster import why_no_cluster

    reason = why_no_cluster()
    if reason is not None:
        sys.exit(f"bench_replicas: cannot run: {reason}")
    if opts.quick:
        opts.runs, opts.steps = 20, 200
    plan = {
        "1": ("1 replica", 1, None),
        "3": ("3 replicas", 3, None),
        "3k": ("3 replicas, one killed", 3, 0.4),
    }
    results = []
    with tempfile.TemporaryDirectory(
        prefix="bench_replicas-", dir=REPO / ".bench" if (REPO / ".bench").is_dir() else None
    ) as tmp:
        for key in opts.phases.split(","):
            name, replicas, kill_at = plan[key]
            print(f"bench_replicas: {name} …", file=sys.stderr, flush=True)
            results.append(phase(name, replicas, kill_at, opts, Path(tmp)))
            report(results, opts)  # after each phase, so a long run shows what it has so far
    if opts.json:
        opts.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
