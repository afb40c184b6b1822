"""The web app's speed, timed by the page itself (performance.now()) in headless Chromium against a
real `branchline ui` (issue 6, "Must show" 3).

- runs table of a 10,000-run project: first rows painted <= 1 s after navigation starts;
- workspace of 20 panels x 100 runs x 100k points each: every panel on screen drawn <= 2 s, with the
  server's min/max downsampling (read from the chunks' sketches);
- a filter change (state, and a config expression) reflected in the table <= 300 ms;
- a live workspace (issue 15): 10 running runs x 20 panels watched while each run logs a step a
  second: the server's CPU seconds per minute of watching and the bytes fetched per update, with the
  app's incremental reads (`min_step`, frontend/src/lib/seriesCache.ts) and, in the same run, with
  every changed series re-read in full (the app's `branchline.fullRefetch` switch), and their ratios.

Stores are generated straight through the store (tests/store_factory.py) and cached in .bench/cache/.
Usage: .venv/bin/python bench/bench_ui.py [--quick] [--reps 3] [--watch 60] [--only live]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.store_factory import add_run, write_series

from _common import REPO, Row, machine_line, median, print_table, spread, verdict
from _gen import cached_store
from branchline.runspec import RunSpec
from branchline.store import Store, open_store
from branchline.vocab import RecordKind

CHROMIUM = "/usr/bin/chromium"
ENTITY = "bench"
STATES = ("finished", "finished", "finished", "failed", "crashed", "killed")

# Injected before the app runs: records (performance.now()) when the first real table row and
# every on-screen panel's chart are painted (the frame after they appear in the DOM).
TIMING_SCRIPT = """
(() => {
  window.__bench = {};
  const painted = (name) => requestAnimationFrame(() => requestAnimationFrame(() => {
    if (window.__bench[name] === undefined) window.__bench[name] = performance.now();
  }));
  const check = () => {
    if (window.__bench.rowSeen === undefined && document.querySelector('.grid-row:not(.skeleton) .run-name')) {
      window.__bench.rowSeen = performance.now();
      performance.mark('first-row');
      painted('firstRow');
    }
    const panels = [...document.querySelectorAll('.panel')].filter((p) => {
      const r = p.getBoundingClientRect();
      return r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth;
    });
    if (window.__bench.panelsSeen === undefined && panels.length >= (window.__benchPanels || 1)
        && panels.every((p) => p.querySelector('figure.chart canvas') || p.querySelector('.chart-empty'))) {
      window.__bench.panelsSeen = performance.now();
      window.__bench.panelCount = panels.length;
      performance.mark('panels-drawn');
      painted('panels');
    }
    if (window.__bench.firstRow === undefined || window.__bench.panels === undefined) requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
})();
"""

# Applies a filter change the way a user does, then waits for the table to show its result.
FILTER_SCRIPT = """
async ([kind, value, expected]) => {
  const count = document.querySelector('[data-testid=table-count]');
  const t0 = performance.now();
  if (kind === 'state') {
    const select = [...document.querySelectorAll('select')]
      .find((s) => [...s.options].some((o) => o.value === 'failed'));
    select.value = value;
    select.dispatchEvent(new Event('change', { bubbles: true }));
  } else {
    const box = document.querySelector('textarea[role=combobox]');
    box.value = value;
    box.dispatchEvent(new Event('input', { bubbles: true }));
    await new Promise((r) => setTimeout(r, 0));
    const t1 = performance.now();
    box.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
    // the typing itself is not part of the filter change
    return await waitFor(t1);
  }
  return await waitFor(t0);

  function waitFor(start) {
    return new Promise((resolve, reject) => {
      const deadline = start + 15000;
      const poll = () => {
        const row = document.querySelector('.grid-row:not(.skeleton) .run-name');
        if (count.textContent === expected && row) {
          requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now() - start)));
        } else if (performance.now() > deadline) reject(new Error('timed out: ' + count.textContent));
        else requestAnimationFrame(poll);
      };
      poll();
    });
  }
}
"""


def build_table(runs: int) -> Callable[[Store], None]:
    def build(store: Store) -> None:
        rng = np.random.default_rng(1)
        lrs = rng.choice([1e-4, 3e-4, 1e-3, 3e-3], runs)
        losses = rng.uniform(0.1, 2.0, runs)
        for i in range(runs):
            add_run(
                store,
                entity=ENTITY,
                project="table",
                run_id=f"t{i:05d}",
                name=f"run-{i:05d}",
                tags=["sweep"] if i % 3 else ["base"],
                group=f"g{i % 20}",
                job_type="train",
                config={"lr": float(lrs[i]), "batch_size": 32 << (i % 4), "optimizer": ("adam", "sgd")[i % 2]},
                history=[(0, {"loss": float(losses[i])})],
                state=STATES[i % len(STATES)],
                created_at=1.7e9 + i,
            )

    return build


def build_panels(runs: int, keys: int, points: int) -> Callable[[Store], None]:
    def build(store: Store) -> None:
        steps = np.arange(points, dtype=np.int64)
        rng = np.random.default_rng(2)
        base = 2.0 / (1.0 + steps / (points / 100))
        for i in range(runs):
            view = add_run(
                store,
                entity=ENTITY,
                project="panels",
                run_id=f"p{i:03d}",
                name=f"run-{i:03d}",
                config={"seed": i},
                history=[(0, {f"train/m{k:02d}": 0.0 for k in range(keys)})],
                created_at=1.7e9 + i,
            )
            scale = 1.0 + 0.02 * i
            for k in range(keys):
                values = np.round(base * scale + 0.05 * rng.standard_normal(points) + 0.01 * k, 3)
                write_series(store, view.incarnation_id, f"train/m{k:02d}", steps, values)

    return build


LIVE_PROJECT = "live"


def live_session(i: int) -> str:
    return f"bench-live-session-{i:02d}"


def build_live(runs: int, keys: int, steps: int) -> Callable[[Store], None]:
    """`runs` running runs, each with `keys` metrics logged at `steps` steps through `Store.apply`
    (the real path, so last_step and heartbeats move as the live writer appends)."""

    def build(store: Store) -> None:
        rng = np.random.default_rng(3)
        for i in range(runs):
            spec = RunSpec(
                entity=ENTITY,
                project=LIVE_PROJECT,
                run_id=f"live{i:02d}",
                incarnation_id=f"{i:02d}" * 8,
                session_id=live_session(i),
                name=f"live-{i:02d}",
                config={"seed": i},
                host="bench-node",
                started_at=time.time(),
            )
            store.begin_run(spec)
            records: list[list[Any]] = []
            for step in range(steps):
                row = {
                    f"train/m{k:02d}": float(2.0 / (1 + step / 300) + 0.05 * rng.standard_normal()) for k in range(keys)
                }
                records.append([len(records) + 1, RecordKind.HISTORY, step, spec.started_at + step, float(step), row])
            for offset in range(0, len(records), 5000):
                store.apply(spec.session_id, records[offset : offset + 5000])

    return build


class LiveWriter:
    """Appends one step (every key) to each live run every `period` seconds, through `Store.apply`,
    in a thread of this process (so its CPU is not counted as the server's)."""

    def __init__(self, db: Path, runs: int, keys: int, steps: int, period: float = 1.0) -> None:
        self.store = open_store(f"sqlite:///{db}")
        self.runs, self.keys, self.step, self.period = runs, keys, steps, period
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stop.is_set():
            now = time.time()
            for i in range(self.runs):
                row = {f"train/m{k:02d}": float(2.0 / (1 + self.step / 300)) for k in range(self.keys)}
                # One HISTORY record per step: sequence numbers continue the build's (step + 1).
                self.store.apply(
                    live_session(i), [[self.step + 1, RecordKind.HISTORY, self.step, now, float(self.step), row]]
                )
            self.step += 1
            self.stop.wait(max(0.0, self.period - (time.time() - now)))

    def __enter__(self) -> LiveWriter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        self.store.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and its live children (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state ppid ... utime (11th) stime (12th).
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


# Counts what the page fetched (Resource Timing): bytes of /api/v1/series answers, and the polls
# of the runs list (one per update of the workspace).
NET_SCRIPT = r"""
(() => {
  performance.setResourceTimingBufferSize(1000000);
  window.__net = { series: 0, seriesBytes: 0, seriesWire: 0, polls: 0, otherBytes: 0, minStep: 0 };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const n = window.__net;
      if (e.name.endsWith('/api/v1/series')) {
        n.series += 1; n.seriesBytes += e.decodedBodySize; n.seriesWire += e.transferSize;
      } else if (e.name.includes('/api/v1/')) {
        n.otherBytes += e.decodedBodySize;
        if (/\/api\/v1\/runs\/[^/]+\/[^/?]+\?/.test(e.name)) n.polls += 1;
      }
    }
  }).observe({ type: 'resource', buffered: true });
})();
"""


def watch_live(browser: Any, base: str, pid: int, *, full: bool, seconds: float, panels: int) -> dict[str, float]:
    """Open the live workspace, wait until every panel is drawn, then watch it for `seconds`."""
    context = browser.new_context(viewport={"width": 1360, "height": 3800}, base_url=base)
    page = context.new_page()
    switch = (
        "localStorage.setItem('branchline.fullRefetch', '1');"
        if full
        else "localStorage.removeItem('branchline.fullRefetch');"
    )
    page.add_init_script(switch)
    page.add_init_script(NET_SCRIPT)
    page.goto(f"/{ENTITY}/{LIVE_PROJECT}?show=10")
    page.wait_for_function(
        f"document.querySelectorAll('.panel figure.chart canvas').length >= {panels}", timeout=180_000
    )
    page.wait_for_timeout(3000)
    page.evaluate("Object.keys(window.__net).forEach((k) => { window.__net[k] = 0; })")
    stats0 = page.evaluate("({...(window.__seriesStats || {})})")
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    page.wait_for_timeout(seconds * 1000)
    cpu1, t1 = cpu_seconds(pid), time.monotonic()
    net = page.evaluate("({...window.__net})")
    stats1 = page.evaluate("({...(window.__seriesStats || {})})")
    points = page.evaluate(
        "[...document.querySelectorAll('.panel figure.chart')].reduce((n, f) => n + Number(f.dataset.points || 0), 0)"
    )
    context.close()
    minutes = (t1 - t0) / 60
    updates = max(1, int(net["polls"]))
    return {
        "cpu_per_min": (cpu1 - cpu0) / minutes,
        "bytes_per_update": net["seriesBytes"] / updates,
        "bytes_per_min": net["seriesBytes"] / minutes,
        "cpu_per_update": (cpu1 - cpu0) / updates,
        "wire_per_update": net["seriesWire"] / updates,
        "requests_per_update": net["series"] / updates,
        "updates": float(net["polls"]),
        "other_per_update": net["otherBytes"] / updates,
        "full_reads": float(stats1.get("full", 0) - stats0.get("full", 0)),
        "incremental_reads": float(stats1.get("incremental", 0) - stats0.get("incremental", 0)),
        "points": float(points),
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve(store_path: Path, info: dict[str, Any] | None = None) -> Iterator[str]:
    """`branchline ui` over a scratch copy of a cached store; yields its base URL (and puts the
    server's pid and the copy's path in `info`)."""
    scratch = REPO / ".bench" / f"bench_ui-{os.getpid()}"
    scratch.mkdir(parents=True, exist_ok=True)
    db = scratch / store_path.name
    shutil.copyfile(store_path, db)
    port = _free_port()
    cli = shutil.which("branchline", path=str(Path(sys.executable).parent)) or "branchline"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    env["BRANCHLINE_CONFIG_DIR"] = str(scratch / ".config")
    proc = subprocess.Popen(
        [cli, "ui", "--no-browser", "--port", str(port), "--store", f"sqlite:///{db}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    if info is not None:
        info.update(pid=proc.pid, db=db)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/v1/health", timeout=5) as response:
                    if json.loads(response.read())["ok"]:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("branchline ui did not start")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(scratch, ignore_errors=True)


def _timing(page: Any, name: str, timeout: float = 30.0) -> float:
    page.wait_for_function(f"window.__bench && window.__bench.{name} !== undefined", timeout=timeout * 1000)
    return float(page.evaluate(f"window.__bench.{name}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--watch",
        type=float,
        default=None,
        help="seconds to watch the live workspace in each mode (60; 20 with --quick)",
    )
    parser.add_argument("--only", choices=["live"], help="run only the live-workspace measurement")
    args = parser.parse_args()
    table_runs = 1000 if args.quick else 10_000
    p_runs, p_keys, p_points = (10, 20, 10_000) if args.quick else (100, 20, 100_000)

    from playwright.sync_api import sync_playwright

    live_runs, live_keys, live_steps = (10, 20, 2000) if args.quick else (10, 20, 20_000)
    watch = args.watch if args.watch is not None else (20.0 if args.quick else 60.0)
    if args.only != "live":
        table_db = cached_store(f"ui-table-{table_runs}", build_table(table_runs))
        panels_db = cached_store(f"ui-panels-{p_runs}x{p_keys}x{p_points}", build_panels(p_runs, p_keys, p_points))
    # Built afresh each time: its runs must still be running (heartbeats recent) when served.
    live_db = REPO / ".bench" / f"ui-live-{os.getpid()}.db"
    live_db.parent.mkdir(parents=True, exist_ok=True)
    live_db.unlink(missing_ok=True)
    started = time.perf_counter()
    live_store = open_store(f"sqlite:///{live_db}")
    try:
        build_live(live_runs, live_keys, live_steps)(live_store)
    finally:
        live_store.close()
    print(
        f"built the live store ({live_runs} runs x {live_keys} keys x {live_steps} steps) "
        f"in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    print(machine_line())

    rows: list[Row] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            info: dict[str, Any] = {}
            with serve(live_db, info) as base, LiveWriter(info["db"], live_runs, live_keys, live_steps):
                modes = {
                    full: watch_live(browser, base, info["pid"], full=full, seconds=watch, panels=live_keys)
                    for full in (False, True)
                }
            inc, fullm = modes[False], modes[True]
            shape = f"{live_runs} running runs × {live_keys} panels, {live_steps:,}+ steps, a step/s/run"
            for label, m in (("incremental reads (min_step)", inc), ("full re-reads (fullRefetch)", fullm)):
                rows.append(
                    Row(
                        f"live workspace, {shape}: server CPU per minute watched, {label}",
                        m["cpu_per_min"],
                        "s/min",
                        note=f"{m['updates']:.0f} updates in {watch:.0f} s, {m['cpu_per_update']:.2f} s per update; "
                        f"{m['points']:.0f} points on screen at the end",
                    )
                )
                rows.append(
                    Row(
                        f"live workspace: series bytes fetched per update, {label}",
                        m["bytes_per_update"] / 1000,
                        "kB",
                        note=f"{m['requests_per_update']:.1f} /series requests per update, "
                        f"{m['wire_per_update'] / 1000:.1f} kB on the wire; "
                        f"runs list + keys {m['other_per_update'] / 1000:.1f} kB; "
                        f"{m['bytes_per_min'] / 1000:.0f} kB/min of series; "
                        f"reads: {m['incremental_reads']:.0f} incremental, {m['full_reads']:.0f} full",
                    )
                )
            rows.append(
                Row(
                    "live workspace: full re-reads ÷ incremental, server CPU",
                    fullm["cpu_per_min"] / max(1e-9, inc["cpu_per_min"]),
                    "×",
                    note="same store and writer, watched one after the other",
                )
            )
            rows.append(
                Row(
                    "live workspace: full re-reads ÷ incremental, server CPU per update",
                    fullm["cpu_per_update"] / max(1e-9, inc["cpu_per_update"]),
                    "×",
                    note="per minute depends on how many updates a loaded browser manages; per update does not",
                )
            )
            rows.append(
                Row(
                    "live workspace: full re-reads ÷ incremental, series bytes per update",
                    fullm["bytes_per_update"] / max(1.0, inc["bytes_per_update"]),
                    "×",
                )
            )
            if args.only != "live":
                with serve(table_db) as base:
                    first_rows: list[float] = []
                    state_changes: list[float] = []
                    expr_changes: list[float] = []
                    failed = sum(1 for i in range(table_runs) if STATES[i % len(STATES)] == "failed")
                    adam_small = sum(1 for i in range(table_runs) if i % 2 == 0 and (32 << (i % 4)) <= 64)
                    for rep in range(args.reps + 1):  # the first load warms the server and the HTTP cache
                        context = browser.new_context(viewport={"width": 1360, "height": 860}, base_url=base)
                        page = context.new_page()
                        page.add_init_script(TIMING_SCRIPT)
                        page.goto(f"/{ENTITY}/table/table")
                        value = _timing(page, "firstRow")
                        page.get_by_test_id("table-count").filter(has_text=f"{table_runs} runs").wait_for()
                        state = float(page.evaluate(FILTER_SCRIPT, ["state", "failed", f"{failed} runs"]))
                        page.evaluate(FILTER_SCRIPT, ["state", "", f"{table_runs} runs"])
                        page.get_by_role("button", name="Filter").click()
                        page.get_by_label("Expression (and / or / parentheses)").check()
                        expr = float(
                            page.evaluate(
                                FILTER_SCRIPT,
                                ["expr", "config.optimizer = adam and config.batch_size <= 64", f"{adam_small} runs"],
                            )
                        )
                        context.close()
                        if rep:
                            first_rows.append(value)
                            state_changes.append(state)
                            expr_changes.append(expr)
                    v = median(first_rows)
                    rows.append(
                        Row(
                            f"runs table, {table_runs:,} runs: first rows painted",
                            v,
                            "ms",
                            target="≤ 1000 ms",
                            status=verdict(v, 1000),
                            note=f"from navigation start {spread(first_rows)}",
                        )
                    )
                    v = median(state_changes)
                    rows.append(
                        Row(
                            "filter change (state select) reflected",
                            v,
                            "ms",
                            target="≤ 300 ms",
                            status=verdict(v, 300),
                            note=f"{failed} of {table_runs} runs {spread(state_changes)}",
                        )
                    )
                    v = median(expr_changes)
                    rows.append(
                        Row(
                            "filter change (config expression) reflected",
                            v,
                            "ms",
                            target="≤ 300 ms",
                            status=verdict(v, 300),
                            note=f"{adam_small} runs {spread(expr_changes)}",
                        )
                    )

                with serve(panels_db) as base:
                    # Every run charted (the target), then the default view (the first 10 runs).
                    for shown in (p_runs, min(10, p_runs)):
                        drawn: list[float] = []
                        count = total = 0
                        for rep in range(args.reps + 1):
                            context = browser.new_context(viewport={"width": 1360, "height": 860}, base_url=base)
                            page = context.new_page()
                            page.add_init_script("window.__benchPanels = 2;")
                            page.add_init_script(TIMING_SCRIPT)
                            page.goto(f"/{ENTITY}/panels?show={shown}")
                            value = _timing(page, "panels", timeout=180)
                            count = int(page.evaluate("window.__bench.panelCount"))
                            total = page.locator(".panel").count()
                            context.close()
                            if rep:
                                drawn.append(value)
                        v = median(drawn)
                        rows.append(
                            Row(
                                f"workspace, {p_keys} panels × {shown} runs charted × {p_points:,} points: "
                                "visible panels drawn",
                                v,
                                "ms",
                                target="≤ 2000 ms" if shown == p_runs else "(default view)",
                                status=verdict(v, 2000),
                                note=f"{count} of {total} panels on screen, {count * shown} series downsampled on the "
                                f"server (min/max per pixel column, long series from chunk sketches) {spread(drawn)}",
                            )
                        )
        finally:
            browser.close()
            for path in (live_db, Path(f"{live_db}-wal"), Path(f"{live_db}-shm")):
                path.unlink(missing_ok=True)
    print_table("bench_ui: the web app in headless Chromium" + (" (--quick)" if args.quick else ""), rows)


if __name__ == "__main__":
    main()
