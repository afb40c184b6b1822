"""The web app's speed, timed by the page itself (performance.now()) in headless Chromium against a
real `branchline ui` (issue 6, "Must show" 3).

- runs table of a 10,000-run project: first rows painted <= 1 s after navigation starts;
- workspace of 20 panels x 100 runs x 100k points each: every panel on screen drawn <= 2 s, with the
  server's min/max downsampling (read from the chunks' sketches);
- a filter change (state, and a config expression) reflected in the table <= 300 ms.

Stores are generated straight through the store (tests/store_factory.py) and cached in .bench/cache/.
Usage: .venv/bin/python bench/bench_ui.py [--quick] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
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
from branchline.store import Store

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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve(store_path: Path) -> Iterator[str]:
    """`branchline ui` over a scratch copy of a cached store; yields its base URL."""
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
    args = parser.parse_args()
    table_runs = 1000 if args.quick else 10_000
    p_runs, p_keys, p_points = (10, 20, 10_000) if args.quick else (100, 20, 100_000)

    from playwright.sync_api import sync_playwright

    table_db = cached_store(f"ui-table-{table_runs}", build_table(table_runs))
    panels_db = cached_store(f"ui-panels-{p_runs}x{p_keys}x{p_points}", build_panels(p_runs, p_keys, p_points))
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
    print_table("bench_ui: the web app in headless Chromium" + (" (--quick)" if args.quick else ""), rows)


if __name__ == "__main__":
    main()
