"""Charts in real headless Chromium (issue 15): single points drawn, one distinct colour per run in
every view, the legend, whole steps on hover, and live runs appended through incremental reads.

With BRANCHLINE_UPDATE_SCREENSHOTS=1 saves workspace-legend.png and single-point-metric.png into
docs/screenshots/.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import (
    browser_page,
    http_status,
    require_browser_and_app,
    seed_store,
    shot,
    ui_env,
    ui_server,
)

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]

# Straight through the store (fast); the live test below logs through the SDK.
SEED = textwrap.dedent(
    """
    import json, math, sys
    sys.path.insert(0, sys.argv[2])
    from branchline.store import open_store
    from tests.store_factory import add_run

    store = open_store(f"sqlite:///{sys.argv[1]}/branchline/store.db")
    ids = {}
    for i in range(10):
        history = [(step, {"loss": (1.5 + 0.1 * i) * math.exp(-step / 15) + 0.05 * i,
                           "accuracy": 0.9 - 0.6 * math.exp(-step / (10 + i))}) for step in range(40)]
        view = add_run(store, entity="charts", project="colors", name=f"run-{i}", config={"seed": i},
                       history=history, created_at=1.7e9 + i)
        ids[f"run-{i}"] = view.run_id
    # The docs' first example: one log call, so every metric has one point.
    view = add_run(store, entity="charts", project="single", name="one-step", history=[(0, {"accuracy": 0.9, "loss": 0.1})])
    ids["one-step"] = view.run_id
    store.close()
    print("IDS=" + json.dumps(ids))
    """
)

LIVE = textwrap.dedent(
    """
    import sys, time
    import branchline

    run = branchline.init(entity="charts", project="live", dir=sys.argv[1], name="live-run",
                          settings={"quiet": True, "x_disable_stats": True, "heartbeat_seconds": 1})
    print("RUN=" + run.id, flush=True)
    step = 0
    while True:
        run.log({"train/loss": 1.0 / (step + 1)})
        step += 1
        time.sleep(0.2)
    """
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_browser_and_app()
    root = tmp_path_factory.mktemp("ui-charts")
    ids = seed_store(root, SEED, str(REPO))
    with ui_server(root) as base:
        yield {"base": base, "root": root, "ids": ids, "entity": "charts"}


@pytest.fixture
def page(browser: Any, site: dict[str, Any]) -> Iterator[Any]:
    with browser_page(browser, site["base"]) as tab:
        yield tab


# Pixels of the chart's canvas within `tolerance` of `color` (a CSS colour): what uPlot drew in it.
COUNT_PIXELS = """
([figure, color, tolerance]) => {
  const probe = document.createElement('div');
  probe.style.color = color;
  document.body.appendChild(probe);
  const [r, g, b] = getComputedStyle(probe).color.match(/\\d+/g).map(Number);
  probe.remove();
  const canvas = figure.querySelector('canvas');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (Math.abs(data[i] - r) <= tolerance && Math.abs(data[i + 1] - g) <= tolerance
        && Math.abs(data[i + 2] - b) <= tolerance && data[i + 3] > 200) n += 1;
  }
  return n;
}
"""


def chart(page: Any, metric: str) -> Any:
    figure = page.locator(f'.panel[data-metric="{metric}"] figure.chart')
    figure.locator("canvas").first.wait_for()
    return figure


def test_a_metric_logged_at_one_step_is_drawn(page: Any, site: dict[str, Any]) -> None:
    page.goto(f"/{site['entity']}/single")
    for metric in ("accuracy", "loss"):
        figure = chart(page, metric)
        assert figure.get_attribute("data-points") == "1"
        color = figure.locator(".legend-item .swatch").first.get_attribute("data-color")
        # The point's marker, in the run's colour, is on the canvas (an empty chart has none).
        drawn = figure.evaluate(f"(el, color) => ({COUNT_PIXELS.strip()})([el, color, 8])", color)
        assert drawn >= 12, f"{metric}: {drawn} pixels of {color}"
    shot(page, "single-point-metric")


def test_ten_runs_get_ten_colours_that_every_view_shares(page: Any, site: dict[str, Any]) -> None:
    page.goto(f"/{site['entity']}/colors")
    figure = chart(page, "loss")
    legend = figure.locator(".chart-legend .legend-item")
    legend.nth(9).wait_for()
    assert legend.count() == 10
    in_legend = {
        legend.nth(i).locator(".legend-name").inner_text(): legend.nth(i)
        .locator(".swatch")
        .evaluate("e => getComputedStyle(e).backgroundColor")
        for i in range(10)
    }
    in_sidebar = {}
    rows = page.locator(".run-row")
    for i in range(rows.count()):
        row = rows.nth(i)
        in_sidebar[row.locator(".run-name").inner_text()] = row.locator(".swatch-button").evaluate(
            "e => getComputedStyle(e).backgroundColor"
        )
    assert set(in_legend) == {f"run-{i}" for i in range(10)}
    assert len(set(in_legend.values())) == 10, in_legend
    assert {name: in_sidebar[name] for name in in_legend} == in_legend
    page.mouse.move(5, 5)
    shot(page, "workspace-legend")

    # A search result shows the run in the same colour.
    page.get_by_placeholder("Search runs…").fill("run-7")
    page.locator(".run-row").filter(has_text="run-8").wait_for(state="detached")
    row = page.locator(".run-row").filter(has_text="run-7")
    assert row.locator(".swatch-button").evaluate("e => getComputedStyle(e).backgroundColor") == in_legend["run-7"]

    # So does each run's page: its title swatch and its charts.
    for name in ("run-0", "run-9"):
        page.goto(f"/{site['entity']}/colors/runs/{site['ids'][name]}")
        swatch = page.get_by_test_id("run-color")
        swatch.wait_for()
        assert swatch.evaluate("e => getComputedStyle(e).backgroundColor") == in_legend[name], name
        page.get_by_role("navigation", name="Run views").get_by_role("link", name="Workspace").click()
        item = chart(page, "loss").locator(".legend-item .swatch").first
        assert item.evaluate("e => getComputedStyle(e).backgroundColor") == in_legend[name], name


def test_the_legend_toggles_and_hides_lines(page: Any, site: dict[str, Any]) -> None:
    page.goto(f"/{site['entity']}/colors")
    figure = chart(page, "loss")
    legend = figure.get_by_role("list", name="Legend of loss")
    legend.wait_for()
    figure.get_by_role("button", name="Hide the legend of loss").click()
    legend.wait_for(state="detached")
    figure.get_by_role("button", name="Show the legend of loss").click()
    legend.wait_for()
    item = legend.locator(".legend-item").filter(has_text="run-3")
    assert item.get_attribute("aria-pressed") == "true"
    item.click()
    assert item.get_attribute("aria-pressed") == "false"
    item.click()
    assert item.get_attribute("aria-pressed") == "true"

    # A grouped chart's legend lists its groups, each in its own colour.
    page.goto(f"/{site['entity']}/colors?group=seed&show=5")
    groups = chart(page, "loss").locator(".chart-legend .legend-item")
    groups.nth(4).wait_for()
    names = groups.locator(".legend-name").all_inner_texts()
    assert len(names) == 5 and all(name.startswith("seed: ") for name in names), names
    colors = {groups.nth(i).locator(".swatch").evaluate("e => getComputedStyle(e).backgroundColor") for i in range(5)}
    assert len(colors) == 5


def test_hover_shows_the_nearest_whole_step(page: Any, site: dict[str, Any]) -> None:
    page.goto(f"/{site['entity']}/colors")
    figure = chart(page, "loss")
    over = figure.locator(".u-over")
    box = over.bounding_box()
    assert box is not None
    head = figure.locator(".chart-tip .tip-head")
    seen = []
    for fraction in (0.13, 0.37, 0.61, 0.83):
        page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] * 0.5)
        head.wait_for()
        text = head.inner_text()
        seen.append(text)
        assert re.fullmatch(r"Step \d+", text), text
    assert len(set(seen)) == 4, seen


def test_a_live_run_grows_by_incremental_reads(page: Any, site: dict[str, Any]) -> None:
    root = site["root"]
    proc = subprocess.Popen(
        [sys.executable, "-c", LIVE, str(root)],
        cwd=root,
        env=ui_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("RUN="), proc.stderr.read() if proc.stderr else line
        run_id = line.strip()[4:]
        deadline = time.monotonic() + 30
        while http_status(f"{site['base']}/api/v1/runs/{site['entity']}/live/{run_id}") != 200:
            assert time.monotonic() < deadline, "the running run never reached the store"
            time.sleep(0.1)
        reads: list[dict[str, Any]] = []
        page.on(
            "request",
            lambda r: reads.append(json.loads(r.post_data or "{}")) if r.url.endswith("/api/v1/series") else None,
        )
        page.goto(f"/{site['entity']}/live")
        page.get_by_test_id("live-badge").wait_for()
        figure = chart(page, "train/loss")
        figure.locator(".live-dot").wait_for()
        first = int(figure.get_attribute("data-points") or 0)
        assert first >= 1
        # The chart grows in place, by reads of the points after the last step it holds.
        deadline = time.monotonic() + 25
        while int(figure.get_attribute("data-points") or 0) < first + 10 or len(reads) < 3:
            assert time.monotonic() < deadline, (first, figure.get_attribute("data-points"), reads)
            page.wait_for_timeout(250)
        loss = [r for r in reads if r.get("keys") == ["train/loss"]]
        assert loss[0].get("min_step") is None
        assert len(loss) >= 3
        assert all(isinstance(r.get("min_step"), int) and r["min_step"] > 0 for r in loss[1:]), loss
        assert [r["min_step"] for r in loss[1:]] == sorted(r["min_step"] for r in loss[1:])
        # The run page shows the live state too.
        page.goto(f"/{site['entity']}/live/runs/{run_id}")
        page.locator(".run-title").get_by_test_id("live-badge").wait_for()
        page.get_by_role("navigation", name="Run views").get_by_role("link", name="Workspace").click()
        chart(page, "train/loss").locator(".live-dot").wait_for()
    finally:
        proc.kill()
        proc.wait()
