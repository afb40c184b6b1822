"""Server ingest: HTTP into PostgreSQL with 4 concurrent writers, and `log()` in remote mode.

1. `branchline server --store postgresql://… --workers W` on loopback (auth on); 4 writer processes
   send N steps of 10 floats each through `HttpSink` (msgpack + gzip, as the SDK's writer does),
   all starting together. Points/s = 4 × N × 10 / (last end − first start). Target ≥ 500k/s on
   2 cores — clients, server workers and PostgreSQL all share them here. Baseline in the same run:
   the same records applied straight to the same PostgreSQL by `Store.apply` (no HTTP).
2. `log()` of a 10-float dict in a fresh process, remote (server) vs embedded (SQLite file), using
   bench/_log_child.py. Target: remote ≤ 1.2× embedded — the network lives in the writer process.
   A real server runs on another host; here it shares the 2 cores with the training process, so
   for this part it runs at a lower CPU priority (nice 10) to stand in for that. The ingest part
   (1) runs it at normal priority.

    .venv/bin/python bench/bench_ingest.py [--quick] [--n 250000] [--workers 2] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import BENCH_DIR, Row, machine_line, median, print_table, run_child, spread, verdict

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
WRITERS = 4


@contextmanager
def pg_database() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    name = f"branchline_bench_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server(store_url: str, workers: int, workdir: Path, *, nice: int = 0) -> Iterator[tuple[str, str]]:
    """A loopback server with one user; yields (base_url, api_key)."""
    import httpx

    from branchline.store import open_store

    with open_store(store_url) as store:
        if not any(u.username == "bench" for u in store.list_users()):
            store.create_user("bench")
        key = store.create_api_key("bench")[1]
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    env["BRANCHLINE_CONFIG_DIR"] = str(workdir / ".config")
    log = open(workdir / "server.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "branchline",
            "server",
            "--store",
            store_url,
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
        preexec_fn=(lambda: os.nice(nice)) if nice else None,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start:\n" + (workdir / "server.log").read_text())
            try:
                if httpx.get(base_url + "/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base_url, key
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def http_ingest(base_url: str, key: str, n: int) -> dict[str, Any]:
    """4 concurrent writers; returns points/s and per-writer detail."""
    start_at = time.time() + 3.0  # after every child has built its records
    args = {"base_url": base_url, "api_key": key, "entity": "bench", "n": n, "start_at": start_at}
    procs = [
        subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "_ingest_child.py"), json.dumps({**args, "seed": i})],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(WRITERS)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"writer failed: {err[-2000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["applied"] == n + 1 for r in results), results
    wall = max(r["ended"] for r in results) - min(r["began"] for r in results)
    return {"points_per_s": WRITERS * n * 10 / wall, "wall": wall}


def direct_apply(store_url: str, n: int) -> float:
    """Baseline: one process applying the same kind of records straight to the store (points/s)."""
    import random

    from branchline.runspec import RunSpec
    from branchline.store import open_store
    from branchline.vocab import RecordKind

    rnd = random.Random(0)
    with open_store(store_url) as store:
        spec = RunSpec("bench", "direct", secrets.token_hex(4), secrets.token_hex(8), secrets.token_hex(8))
        store.begin_run(spec)
        records = [
            [i + 1, int(RecordKind.HISTORY), i, 1e9 + i, i * 1e-3, {f"metric_{k}": rnd.random() for k in range(10)}]
            for i in range(n)
        ]
        began = time.perf_counter()
        for offset in range(0, n, 10_000):
            store.apply(spec.session_id, records[offset : offset + 10_000])
        return n * 10 / (time.perf_counter() - began)


def log_overhead(base_url: str, key: str, n: int, reps: int, workdir: Path) -> tuple[list[float], list[float]]:
    """Per-call log() µs, embedded vs remote, interleaved fresh processes."""
    embedded: list[float] = []
    remote: list[float] = []
    remote_env = {"BRANCHLINE_BASE_URL": base_url, "BRANCHLINE_API_KEY": key, "BRANCHLINE_SILENT": "true"}
    clean = {"BRANCHLINE_SILENT": "true", "BRANCHLINE_BASE_URL": "", "BRANCHLINE_API_KEY": ""}
    for rep in range(reps):
        for label, env, out in (("embedded", clean, embedded), ("remote", remote_env, remote)):
            args = {"config": "branchline", "mode": "loop", "n": n, "seed": rep, "dir": str(workdir / f"{label}{rep}")}
            args["verify"] = label == "embedded"
            result = run_child(sys.executable, BENCH_DIR / "_log_child.py", args, env=env, timeout=1800)
            if "error" in result:
                raise RuntimeError(f"{label}: {result['error']}\n{result.get('stderr', '')}")
            if label == "embedded":
                assert result["n_read"] == n, result
            out.append(float(result["log_us"]))
    return embedded, remote


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small N, one repeat (CI smoke)")
    parser.add_argument("--n", type=int, default=None, help="steps per writer (default 250,000; 20,000 quick)")
    parser.add_argument("--log-n", type=int, default=None, help="log() calls (default 100,000; 10,000 quick)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (default 2)")
    parser.add_argument("--reps", type=int, default=None)
    opts = parser.parse_args()
    n = opts.n or (20_000 if opts.quick else 250_000)
    log_n = opts.log_n or (10_000 if opts.quick else 100_000)
    reps = opts.reps or (1 if opts.quick else 3)
    print(f"# bench_ingest: {WRITERS} writers × {n:,} steps × 10 floats over HTTP, {opts.workers} server workers")
    print(machine_line())

    rates: list[float] = []
    direct: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bl-ingest-") as tmp, pg_database() as url:
        workdir = Path(tmp)
        with server(url, opts.workers, workdir) as (base_url, key):
            for _ in range(reps):
                rates.append(http_ingest(base_url, key, n)["points_per_s"])
                direct.append(direct_apply(url, min(n, 100_000)))
        with server(url, 1, workdir, nice=10) as (base_url, key):
            embedded, remote = log_overhead(base_url, key, log_n, reps, workdir)

    rate, base = median(rates), median(direct)
    ratio = median(remote) / median(embedded)
    print_table(
        "HTTP ingest into PostgreSQL and log() overhead in remote mode",
        [
            Row(
                f"ingest, {WRITERS} writers over HTTP",
                rate / 1000,
                "k points/s",
                baseline=base / 1000,
                baseline_name="k/s Store.apply, 1 process",
                ratio=rate / base,
                target="≥ 500 k/s",
                status=verdict(rate, 500_000, higher_is_better=True),
                note=spread([r / 1000 for r in rates]),
            ),
            Row(
                "log(), 10 floats, remote (server niced)",
                median(remote),
                "µs",
                baseline=median(embedded),
                baseline_name="µs embedded",
                ratio=ratio,
                target="≤ 1.2×",
                status=verdict(ratio, 1.2),
                note=f"remote {spread(remote)} embedded {spread(embedded)}",
            ),
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
