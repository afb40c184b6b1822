"""The wandb client into `branchline server`, against our SDK in remote mode into the same server.

One run of N steps × 10 floats from each client (`_wandb_child.py`: the same loop, `import wandb`
from `.wandb-venv` or `import branchline as wandb` with BRANCHLINE_BASE_URL), into one loopback
`branchline server` (one worker, SQLite, or PostgreSQL with `--postgres`), in the same run:

- **stored after finish s**: from `finish()` returning to the last step being readable in the store
  (the parent polls the store directly, not through the server). 0 when it was already there.
  Target: ≤ 0.5 s for the wandb path (it stores as fast as the client sends).
- **client wall s**: the training process from spawn to exit; the notes split it into start-up +
  init, the `log()` loop and `finish()`.
- **server CPU s / M points**: the server process's user + system CPU seconds (psutil, workers
  included) from just before the client starts until its last step is stored, per million points.
  Ratio wandb / SDK; the wandb client sends JSON lines, our SDK msgpack rows.

    .venv/bin/python bench/bench_wandb.py [--quick] [--n 100000] [--reps 1] [--postgres]
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
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import BENCH_DIR, REPO, Row, machine_line, median, print_table, spread, verdict

WANDB_PYTHON = REPO / ".wandb-venv" / "bin" / "python"
ENTITY = "bench"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server(store_url: str, workdir: Path) -> Iterator[tuple[str, str, int]]:
    """A loopback server with one user; yields (base_url, api_key, pid)."""
    import httpx

    from branchline.store import open_store

    with open_store(store_url) as store:
        store.create_user(ENTITY)
        key = store.create_api_key(ENTITY)[1]
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    env["BRANCHLINE_CONFIG_DIR"] = str(workdir / ".config")
    command = [sys.executable, "-m", "branchline", "server", "--store", store_url, "--port", str(port)]
    # A generous crash timeout: a client busy building its rows sends nothing for a while.
    command += ["--crash-timeout", "600"]
    with open(workdir / "server.log", "ab") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start:\n" + (workdir / "server.log").read_text())
            try:
                if httpx.get(base_url + "/api/v1/server/alive", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base_url, key, proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the server process and its live children (uvicorn workers)."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def one_run(label: str, store_url: str, base_url: str, key: str, pid: int, n: int, workdir: Path) -> dict[str, Any]:
    """Start one training process, wait until its last step is stored; the figures of that run."""
    from branchline.store import open_store

    run_id = f"{label}-{secrets.token_hex(3)}"
    cwd = workdir / run_id
    cwd.mkdir()
    mark = cwd / "finished-at"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    if label == "wandb":
        python, module = str(WANDB_PYTHON), "wandb"
        env.update(WANDB_BASE_URL=base_url, WANDB_API_KEY=key, WANDB_SILENT="true", WANDB_DIR=str(cwd))
        env.update(WANDB_CONFIG_DIR=str(cwd / ".config"), WANDB_CACHE_DIR=str(cwd / ".cache"))
    else:
        python, module = sys.executable, "branchline"
        env.update(BRANCHLINE_BASE_URL=base_url, BRANCHLINE_API_KEY=key, BRANCHLINE_SILENT="true")
        env.update(BRANCHLINE_DIR=str(cwd), BRANCHLINE_ENTITY=ENTITY)
    args = {"n": n, "module": module, "project": "bench-wandb", "run_id": run_id, "mark": str(mark)}
    cpu_before = cpu_seconds(pid)
    spawned = time.time()
    proc = subprocess.Popen(
        [python, str(BENCH_DIR / "_wandb_child.py"), json.dumps(args)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    output: dict[str, str] = {}
    reader = threading.Thread(target=lambda: output.update(zip(("out", "err"), proc.communicate(), strict=True)))
    reader.start()
    while not mark.exists():
        if proc.poll() is not None and not mark.exists():
            reader.join()
            raise RuntimeError(f"{label} client failed:\n{output.get('err', '')[-3000:]}")
        time.sleep(0.02)
    stored_at = None
    with open_store(store_url) as store:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            run = store.get_run(ENTITY, "bench-wandb", run_id)
            if run is not None and run.last_step >= n - 1:
                stored_at = time.time()
                break
            time.sleep(0.05)
        cpu_after = cpu_seconds(pid)
        if run is None or stored_at is None:
            raise RuntimeError(f"{label}: the last step was not stored within 10 minutes")
        steps, _ = store.read_series(run.incarnation_id, "metric_9")
        assert len(steps) == n, (label, len(steps))
    reader.join()
    exited = time.time()
    if proc.returncode != 0:
        raise RuntimeError(f"{label} client failed:\n{output.get('err', '')[-3000:]}")
    timings = json.loads(output["out"].strip().splitlines()[-1])
    finished_at = float(mark.read_text())
    return {
        **timings,
        "stored_after_s": max(0.0, stored_at - finished_at),
        "client_wall_s": exited - spawned,
        "server_cpu_per_mpoint": (cpu_after - cpu_before) / (n * 10 / 1e6),
    }


@contextmanager
def store_url(postgres: bool, workdir: Path) -> Iterator[str]:
    if not postgres:
        yield f"sqlite:///{workdir / 'store.db'}"
        return
    from bench_ingest import pg_database

    with pg_database() as url:
        yield url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 steps (CI smoke)")
    parser.add_argument("--n", type=int, default=None, help="steps (default 100,000; 10,000 quick)")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--postgres", action="store_true", help="the server on PostgreSQL (default SQLite)")
    opts = parser.parse_args()
    n = opts.n or (10_000 if opts.quick else 100_000)
    if not WANDB_PYTHON.exists():
        print(f"bench_wandb: the wandb client's venv is missing ({WANDB_PYTHON}); run scripts/install.sh")
        return 0
    backend = "PostgreSQL" if opts.postgres else "SQLite"
    print(f"# bench_wandb: {n:,} steps × 10 floats, wandb client vs branchline SDK (remote), server on {backend}")
    print(machine_line())
    results: dict[str, list[dict[str, Any]]] = {"wandb": [], "branchline": []}
    with tempfile.TemporaryDirectory(prefix="bl-bench-wandb-") as tmp:
        workdir = Path(tmp)
        with store_url(opts.postgres, workdir) as url, server(url, workdir) as (base_url, key, pid):
            for _ in range(opts.reps):
                for label, found in results.items():  # interleaved: wandb, SDK, wandb, SDK, …
                    found.append(one_run(label, url, base_url, key, pid, n, workdir))
    print_table(f"wandb client into branchline server ({n:,} steps × 10 floats)", _rows(results))
    return 0


def _rows(results: dict[str, list[dict[str, Any]]]) -> list[Row]:
    def figure(label: str, name: str) -> float:
        return median(r[name] for r in results[label])

    def ratio(name: str) -> float:
        base = figure("branchline", name)
        return figure("wandb", name) / base if base else float("nan")

    lag = figure("wandb", "stored_after_s")
    wandb_parts = ", ".join(f"{k} {figure('wandb', k):.2f} s" for k in ("init_s", "log_s", "finish_s"))
    sdk_parts = ", ".join(f"{k} {figure('branchline', k):.2f} s" for k in ("init_s", "log_s", "finish_s"))
    return [
        Row(
            "stored after finish (wandb)",
            lag,
            "s",
            baseline=figure("branchline", "stored_after_s"),
            baseline_name="s SDK",
            target="≤ 0.5 s",
            status=verdict(lag, 0.5),
            note=spread([r["stored_after_s"] for r in results["wandb"]]),
        ),
        Row(
            "client wall (wandb)",
            figure("wandb", "client_wall_s"),
            "s",
            baseline=figure("branchline", "client_wall_s"),
            baseline_name="s SDK",
            ratio=ratio("client_wall_s"),
            note=f"wandb: {wandb_parts}; SDK: {sdk_parts}",
        ),
        Row(
            "log() µs/step (wandb)",
            figure("wandb", "log_us"),
            "µs",
            baseline=figure("branchline", "log_us"),
            baseline_name="µs SDK",
            ratio=ratio("log_us"),
        ),
        Row(
            "server CPU per M points (wandb)",
            figure("wandb", "server_cpu_per_mpoint"),
            "s",
            baseline=figure("branchline", "server_cpu_per_mpoint"),
            baseline_name="s SDK",
            ratio=ratio("server_cpu_per_mpoint"),
            note="server process + workers, user + system",
        ),
    ]


if __name__ == "__main__":
    sys.exit(main())
