"""The web app in real headless Chromium (Debian's), driven by Playwright, against a real
`branchline ui --no-browser` process over a store filled by the SDK.

Saves screenshots of the workspace, the runs table and every run tab; with
BRANCHLINE_UPDATE_SCREENSHOTS=1 into docs/screenshots/ (the ones the README shows).
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
    get_json,
    http_status,
    require_browser_and_app,
    seed_store,
    shot,
    ui_env,
    ui_server,
)

pytestmark = pytest.mark.browser

SEED = textwrap.dedent(
    """
    import json, math, os, random, sys, time
    import branchline

    root = sys.argv[1]
    rng = random.Random(7)
    quiet = {"quiet": True}
    ids = {}
    specs = [("adam", 3e-4, "vit"), ("adam", 1e-3, "resnet"), ("sgd", 1e-2, "vit"), ("sgd", 3e-2, "resnet")]
    for i, (opt, lr, arch) in enumerate(specs):
        run = branchline.init(project="vision", dir=root, name=f"{arch}-{opt}-{i}",
                              config={"optimizer": opt, "lr": lr, "batch_size": 64 * (1 + i % 2),
                                      "model": {"arch": arch, "layers": 12 + 6 * i}},
                              tags=["baseline"] if i < 2 else ["sweep"], group=arch, job_type="train",
                              settings={**quiet, "x_stats_sampling_interval": 0.1})
        base = 2.2 + 0.1 * i
        for step in range(240):
            loss = base * math.exp(-step / (50 + 15 * i)) + 0.15 + rng.gauss(0, 0.03)
            row = {"train/loss": loss, "train/acc": 1 - loss / 3, "lr": lr * (0.5 ** (step // 80))}
            if step % 10 == 0:
                row["val/loss"] = loss + 0.08
                row["val/acc"] = 1 - (loss + 0.08) / 3
            run.log(row)
            if step % 40 == 0:
                print(f"\\x1b[1mepoch {step // 40}\\x1b[0m train/loss=\\x1b[32m{loss:.4f}\\x1b[0m lr={lr}", flush=True)
            if step % 60 == 0:
                time.sleep(0.1)
        print("\\x1b[33mwarning:\\x1b[0m checkpoint skipped", file=sys.stderr, flush=True)
        with open("config.yaml", "w") as fh:
            fh.write(f"optimizer: {opt}\\nlr: {lr}\\n")
        run.save("config.yaml", policy="now")
        os.makedirs("ckpt/logs", exist_ok=True)
        with open("ckpt/meta.json", "w") as fh:
            fh.write(json.dumps({"arch": arch, "optimizer": opt}))
        with open("ckpt/logs/train.log", "w") as fh:
            fh.write(f"finished {arch}-{opt}\\n")
        run.save("ckpt/**/*", policy="now")
        ids[f"r{i}"] = {"run_id": run.id, "name": run.name, "incarnation": run._start.incarnation_id}
        run.finish()

    fork = branchline.init(project="vision", dir=root, name="resnet-adam-fork", fork_from=f"{ids['r1']['run_id']}?_step=120",
                           config={"lr": 2e-4}, tags=["fork"], settings=quiet)
    for step in range(121, 240):
        fork.log({"train/loss": 0.8 * math.exp(-step / 80) + 0.12, "train/acc": 0.8})
    ids["fork"] = {"run_id": fork.id, "name": fork.name}
    fork.finish()

    rewind = branchline.init(project="vision", dir=root, id=ids["r0"]["run_id"],
                             resume_from=f"{ids['r0']['run_id']}?_step=150", settings=quiet)
    for step in range(151, 260):
        rewind.log({"train/loss": 0.35 * math.exp(-step / 150) + 0.1, "train/acc": 0.88})
    rewind.finish()

    for name in ("move-me", "delete-me", "bulk-1", "bulk-2"):
        victim = branchline.init(project="vision", dir=root, name=name, config={"lr": 0.5}, settings=quiet)
        victim.log({"train/loss": 3.0})
        ids[name] = {"run_id": victim.id, "name": name}
        victim.finish()
    print("IDS=" + json.dumps(ids))
    """
)

LOOP = textwrap.dedent(
    """
    import sys, time
    import branchline

    run = branchline.init(project="vision", dir=sys.argv[1], name="live-run",
                          settings={"quiet": True, "heartbeat_seconds": 1})
    print("RUN=" + run.id, flush=True)
    step = 0
    while True:
        run.log({"train/loss": 1.0 / (step + 1)})
        step += 1
        time.sleep(0.05)
    """
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A store filled by the SDK and a `branchline ui` process serving it."""
    require_browser_and_app()
    root = tmp_path_factory.mktemp("ui-world")
    ids = seed_store(root, SEED)
    with ui_server(root) as base:
        entity = get_json(f"{base}/api/v1/projects")["projects"][0]["entity"]
        yield {"base": base, "root": root, "ids": ids, "entity": entity}


@pytest.fixture
def page(browser: Any, site: dict[str, Any]) -> Iterator[Any]:
    with browser_page(browser, site["base"]) as tab:
        yield tab


def project_url(site: dict[str, Any], tab: str = "") -> str:
    return f"/{site['entity']}/vision" + (f"/{tab}" if tab else "")


def run_url(site: dict[str, Any], key: str, tab: str = "") -> str:
    return f"/{site['entity']}/vision/runs/{site['ids'][key]['run_id']}" + (f"/{tab}" if tab else "")


def query(page: Any) -> dict[str, str]:
    from urllib.parse import parse_qsl, urlsplit

    return dict(parse_qsl(urlsplit(page.url).query))


def plot_box(panel: Any) -> dict[str, float]:
    """The plotting area of a panel's chart, once it is on screen."""
    over = panel.locator(".u-over")
    over.wait_for()
    box = over.bounding_box()
    assert box is not None
    return dict(box)


def sidebar_names(page: Any) -> list[str]:
    return [name.strip() for name in page.locator(".run-list .run-name").all_inner_texts()]


# -- home and workspace ---------------------------------------------------------------------------------


def test_home_lists_projects_and_searches(page: Any, site: dict[str, Any]) -> None:
    page.goto("/")
    row = page.get_by_role("row", name=re.compile("vision"))
    row.wait_for()
    assert "9" in row.inner_text()  # run count
    page.get_by_label("Search projects").fill("nothing-like-this")
    page.get_by_text("No project matches").wait_for()
    assert "q=nothing-like-this" in page.url
    page.get_by_label("Search projects").fill("vis")
    page.get_by_role("link", name="vision").click()
    page.wait_for_url(re.compile(r"/vision$"))
    page.locator(".panel[data-metric='train/loss'] canvas").first.wait_for()


def test_workspace_search_toggle_colour_axes_smoothing_zoom(page: Any, site: dict[str, Any]) -> None:
    page.goto(project_url(site))
    count = page.get_by_test_id("run-count")
    count.wait_for()
    page.wait_for_function("document.querySelector('[data-testid=run-count]').textContent.includes('9 runs')")
    assert "(9 visualized)" in count.inner_text()
    loss_panel = page.locator(".panel[data-metric='train/loss']")
    loss_panel.locator("canvas").first.wait_for()
    assert page.locator(".section-toggle", has_text="train").count() == 1  # sections by key prefix
    assert page.locator(".section-toggle", has_text="val").count() == 1
    assert page.locator(".section-toggle", has_text="System").count() == 1
    shot(page, "workspace")

    # search by name filters the sidebar and the plots
    page.get_by_label("Search runs by name").fill("fork")
    page.wait_for_function("document.querySelector('[data-testid=run-count]').textContent.startsWith('1 run ')")
    assert sidebar_names(page) == ["resnet-adam-fork"]
    assert query(page)["q"] == "fork"
    page.get_by_label("Search runs by name").fill("")
    page.wait_for_function("document.querySelector('[data-testid=run-count]').textContent.includes('9 runs')")

    # the eye toggle hides a run from the charts
    first = site["ids"]["r0"]
    page.get_by_role("button", name=f"Hide {first['name']} in charts").click()
    page.wait_for_function("document.querySelector('[data-testid=run-count]').textContent.includes('(8 visualized)')")
    assert query(page)["hide"] == first["run_id"]
    page.get_by_role("button", name=f"Show {first['name']} in charts").click()
    page.wait_for_function("document.querySelector('[data-testid=run-count]').textContent.includes('(9 visualized)')")

    # a custom colour per run, kept in the URL
    second = site["ids"]["r1"]
    page.get_by_role("button", name=f"Colour of {second['name']}").click()
    page.get_by_role("button", name="Colour #ee1177").click()
    assert query(page)["color"] == f"{second['run_id']}:ee1177"

    # hovering shows every visible run's value at that x (the chart is redrawn with the new colour)
    page.wait_for_function(
        "document.querySelector(\".panel[data-metric='train/loss'] .u-over\") !== null"
        " && document.querySelectorAll('.panel .chart-loading').length === 0"
    )
    page.wait_for_timeout(200)
    box = plot_box(loss_panel)
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
    tip = loss_panel.locator(".chart-tip")
    tip.wait_for(state="visible")
    assert tip.locator(".tip-row").count() >= 5
    assert tip.locator(".tip-head").inner_text().startswith("Step")

    # drag to zoom, then reset
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    reset = loss_panel.get_by_role("button", name="Reset zoom")
    reset.wait_for()
    reset.click()
    reset.wait_for(state="detached")

    # x-axis: relative time; the tooltip follows
    page.get_by_label("X-axis").select_option("_runtime")
    assert query(page)["x"] == "_runtime"
    loss_panel.locator("canvas").first.wait_for()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)
    page.wait_for_function(
        "document.querySelector(\".panel[data-metric='train/loss'] .tip-head\")?.textContent.startsWith('Relative time')"
    )
    page.get_by_label("X-axis").select_option("_step")

    # smoothing and log scale
    page.locator(".control-slider input[type=range]").evaluate(
        "el => { el.value = '0.6'; el.dispatchEvent(new Event('input', { bubbles: true })); }"
    )
    assert query(page)["smooth"] == "0.60"
    page.get_by_text("Smoothing 0.60").wait_for()
    page.get_by_label("Log scale").check()
    assert query(page)["log"] == "1"
    loss_panel.locator("canvas").first.wait_for()

    # the view is in the URL: reloading restores it
    page.reload()
    page.get_by_text("Smoothing 0.60").wait_for()
    assert page.get_by_label("Log scale").is_checked()


def test_workspace_group_by_config_column_draws_mean_and_band(page: Any, site: dict[str, Any]) -> None:
    page.goto(project_url(site))
    page.get_by_test_id("run-count").wait_for()
    page.get_by_label("Group by").select_option("optimizer")
    assert query(page)["group"] == "optimizer"
    page.get_by_test_id("group-note").wait_for()
    adam = page.locator(".group-row[data-group='adam']")
    adam.wait_for()
    assert "3 runs" in adam.inner_text()  # two runs and the fork, which inherits its source's config
    assert page.locator(".group-row[data-group='sgd']").count() == 1
    loss_panel = page.locator(".panel[data-metric='train/loss']")
    figure = loss_panel.locator("figure.chart")
    page.wait_for_function(
        "Number(document.querySelector(\".panel[data-metric='train/loss'] figure.chart\")?.dataset.bands) >= 2"
    )
    # one mean line with its min-max band per group (every group logged train/loss)
    assert int(figure.get_attribute("data-bands") or 0) == page.locator(".group-row").count()
    box = plot_box(loss_panel)
    page.mouse.move(box["x"] + box["width"] * 0.35, box["y"] + box["height"] / 2)
    tip = loss_panel.locator(".chart-tip")
    tip.wait_for(state="visible")
    rows = tip.locator(".tip-row").all_inner_texts()
    adam_row = next(row for row in rows if "optimizer: adam (3)" in row)
    assert re.search(r"\(.+ – .+\)", adam_row), adam_row  # the min – max range at the cursor

    # the server computes the band on aligned steps: mean within [min, max], adam's two runs at step 0
    adam_runs = [site["ids"]["r0"], site["ids"]["r1"]]
    stats = page.evaluate(
        """async (runIds) => {
            const entity = location.pathname.split('/')[1];
            const incs = [];
            for (const id of runIds) {
                const run = await (await fetch(`/api/v1/runs/${entity}/vision/${id}`)).json();
                incs.push(run.incarnation_id);
            }
            const body = {groups: [{name: 'adam', incarnations: incs}], keys: ['train/loss'], buckets: 500};
            const r = await fetch('/api/v1/series/groups', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                  body: JSON.stringify(body)});
            return (await r.json()).series[0];
        }""",
        [r["run_id"] for r in adam_runs],
    )
    assert stats["runs"] == 2 and stats["count"] == 260  # the rewound run reaches step 259
    assert all(lo <= m <= hi for lo, m, hi in zip(stats["min"], stats["mean"], stats["max"], strict=True))
    assert stats["max"][0] > stats["min"][0]  # two different runs at step 0
    shot(page, "workspace-grouped")

    page.get_by_label("Group by").select_option("")
    page.get_by_test_id("group-note").wait_for(state="detached")
    assert "group" not in query(page)


def test_system_section_in_the_workspace(page: Any, site: dict[str, Any]) -> None:
    page.goto(project_url(site))
    toggle = page.get_by_role("button", name="System", exact=True)
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    assert query(page)["closed"] == "-"
    cpu = page.locator(".panel[data-metric='cpu']")
    cpu.scroll_into_view_if_needed()  # panels are drawn when scrolled to
    cpu.locator("canvas").first.wait_for()


# -- runs table ------------------------------------------------------------------------------------------


def test_runs_table_sort_filter_keyboard_and_bulk_delete(page: Any, site: dict[str, Any]) -> None:
    page.goto(project_url(site, "table"))
    grid = page.get_by_role("grid")
    page.get_by_test_id("table-count").filter(has_text="9 runs").wait_for()
    for header in ("Name", "State", "Created", "Runtime", "Tags", "Group", "Job type"):
        assert grid.get_by_role("columnheader", name=header, exact=True).count() == 1, header
    grid.get_by_role("columnheader", name=re.compile("optimizer")).wait_for()  # a config column
    grid.get_by_role("columnheader", name=re.compile(r"train\/loss")).wait_for()  # a summary metric
    shot(page, "runs-table")

    # sort by name from the column header: descending, then ascending
    grid.get_by_role("button", name="Name", exact=True).click()
    assert query(page)["sort"] == "-display_name"
    page.wait_for_function(
        "document.querySelector('[role=row][aria-rowindex=\"2\"] .run-name')?.textContent === 'vit-sgd-2'"
    )
    grid.get_by_role("button", name="Name", exact=True).click()
    assert query(page)["sort"] == "+display_name"
    page.wait_for_function(
        "document.querySelector('[role=row][aria-rowindex=\"2\"] .run-name')?.textContent === 'bulk-1'"
    )

    # a filter: config.lr = 0.5 (the four victim runs)
    page.get_by_role("button", name="Filter").click()
    page.get_by_label("Column of condition 1").fill("config.lr")
    page.get_by_label("Operator of condition 1").select_option("=")
    page.get_by_label("Value of condition 1").fill("0.5")
    page.get_by_role("button", name="Apply").click()
    page.get_by_test_id("table-count").filter(has_text="4 runs").wait_for()
    assert json.loads(query(page)["f"]) == {"config.lr": {"$eq": 0.5}}

    # keyboard: focus the grid, move down, open with Enter
    grid.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/runs/"))
    assert page.get_by_role("heading", level=1).inner_text() == "bulk-2"
    page.go_back()

    # select two runs and delete them through the confirmation dialog
    page.get_by_test_id("table-count").filter(has_text="4 runs").wait_for()
    page.get_by_label("Select bulk-1").check()
    page.get_by_label("Select bulk-2").check()
    page.get_by_role("button", name="Delete…").click()
    dialog = page.get_by_role("dialog")
    assert "Delete 2 runs?" in dialog.inner_text()
    dialog.get_by_role("button", name="Delete 2 runs").click()
    page.get_by_test_id("table-count").filter(has_text="2 runs").wait_for()
    base = f"{site['base']}/api/v1/runs/{site['entity']}/vision"
    for key in ("bulk-1", "bulk-2"):
        assert http_status(f"{base}/{site['ids'][key]['run_id']}") == 404


def header_ids(page: Any) -> list[str]:
    return [
        str(h)
        for h in page.locator(".grid-header [role=columnheader][data-column]").evaluate_all(
            "els => els.map(e => e.dataset.column)"
        )
    ]


def test_runs_table_pin_reorder_group_histograms_and_expressions(page: Any, site: dict[str, Any]) -> None:
    page.goto(project_url(site, "table"))
    page.evaluate("localStorage.clear()")
    page.reload()
    grid = page.get_by_role("grid")
    page.get_by_test_id("table-count").filter(has_text=re.compile(r"\d+ runs")).wait_for()
    assert header_ids(page)[:3] == ["name", "state", "created"]

    # pin a column: it moves next to Name, sticks while scrolling sideways, and is in the URL
    pin = grid.get_by_role("button", name="Pin column Job type")
    pin.click()
    assert query(page)["pin"] == "job_type"
    assert header_ids(page)[:2] == ["name", "job_type"]
    assert grid.get_by_role("button", name="Unpin column Job type").get_attribute("aria-pressed") == "true"
    assert "sticky" in (page.locator(".grid-header [data-column=job_type]").get_attribute("class") or "")
    grid.evaluate("el => { el.scrollLeft = 600; }")
    page.wait_for_timeout(100)
    name_box = page.locator(".grid-header [data-column=name]").bounding_box()
    job_box = page.locator(".grid-header [data-column=job_type]").bounding_box()
    assert name_box and job_box and abs(job_box["x"] - (name_box["x"] + name_box["width"])) < 2  # still beside Name
    grid.evaluate("el => { el.scrollLeft = 0; }")

    # drag Runtime onto State: it moves before State; Alt+→ on a header moves it one place right
    page.drag_and_drop(".grid-header [data-column=runtime]", ".grid-header [data-column=state]")
    assert header_ids(page)[:4] == ["name", "job_type", "runtime", "state"]
    page.locator(".grid-header [data-column=runtime] .sort-button").focus()
    page.keyboard.press("Alt+ArrowRight")
    assert header_ids(page)[:4] == ["name", "job_type", "state", "runtime"]

    # remembered per project: a plain link to the table restores pins and order from localStorage
    page.goto(project_url(site, "table"))
    page.get_by_test_id("table-count").filter(has_text=re.compile(r"\d+ runs")).wait_for()
    assert header_ids(page)[:4] == ["name", "job_type", "state", "runtime"]
    grid.get_by_role("button", name="Unpin column Job type").click()
    assert "pin" not in query(page)
    assert "sticky" not in (page.locator(".grid-header [data-column=job_type]").get_attribute("class") or "")
    assert grid.get_by_role("button", name="Pin column Job type").get_attribute("aria-pressed") == "false"

    # group rows by a config column: numeric columns become a histogram per group
    page.get_by_label("Group rows by").select_option("config:optimizer")
    assert query(page)["tgroup"] == "config:optimizer"
    table = page.get_by_role("table", name="Runs grouped by config.optimizer")
    adam = table.locator("tr[data-group='adam']")
    adam.wait_for()
    assert adam.locator("td").first.inner_text() == "3"
    hist = adam.locator("td[data-column='summary:train/loss'] figure.mini-hist")
    assert hist.get_attribute("data-count") == "3"
    label = hist.locator("svg").get_attribute("aria-label") or ""
    assert label.startswith("Histogram of summary.train/loss: 3 values from")
    assert int(hist.locator("rect").evaluate_all("rs => rs.filter(r => r.getAttribute('height') !== '0').length")) >= 1
    lr = adam.locator("td[data-column='config:lr'] figure.mini-hist")
    assert float(lr.get_attribute("data-min") or 0) == pytest.approx(2e-4)
    assert float(lr.get_attribute("data-max") or 0) == pytest.approx(1e-3)
    assert table.locator("tr[data-group='sgd'] td").first.inner_text() == "2"
    shot(page, "runs-table-grouped")
    page.get_by_role("button", name="Show the runs where config.optimizer is sgd").click()
    page.get_by_test_id("table-count").filter(has_text="2 runs").wait_for()
    assert "tgroup" not in query(page)
    assert json.loads(query(page)["f"]) == {"config.optimizer": {"$eq": "sgd"}}

    # the expression editor: column completion, and / or with parentheses, compiled to the filter JSON
    page.get_by_role("button", name=re.compile("^Filter")).click()
    page.get_by_label("Expression (and / or / parentheses)").check()
    box = page.get_by_label("Filter expression")
    assert box.input_value() == "config.optimizer = sgd"  # the current filter, printed back
    box.fill("")
    box.press_sequentially("config.optim")
    options = page.get_by_role("listbox", name="Columns").get_by_role("option")
    options.first.wait_for()
    assert options.all_inner_texts()[0] == "config.optimizer"
    # On a busy machine animation frames come late; the completion must not move the caret back
    # behind what is typed after it (frames are made late on purpose here, then restored).
    page.evaluate(
        "() => { window.__raf = window.requestAnimationFrame; window.requestAnimationFrame = cb => setTimeout(cb, 400); }"
    )
    box.press("Tab")
    assert box.input_value() == "config.optimizer "
    box.press_sequentially("= adam and (config.lr <")
    page.wait_for_timeout(450)
    page.evaluate("() => { window.requestAnimationFrame = window.__raf; }")
    assert box.input_value() == "config.optimizer = adam and (config.lr <"
    page.get_by_test_id("expr-status").filter(has_text="Expected a value").wait_for()
    box.press_sequentially(' 0.0005 or config.model.arch = "resnet")')
    page.get_by_test_id("expr-status").filter(has_text="Compiles to").wait_for()
    box.press("Escape")
    page.get_by_role("button", name="Apply").click()
    page.get_by_test_id("table-count").filter(has_text="3 runs").wait_for()
    assert json.loads(query(page)["f"]) == {
        "$and": [
            {"config.optimizer": {"$eq": "adam"}},
            {"$or": [{"config.lr": {"$lt": 0.0005}}, {"config.model.arch": {"$eq": "resnet"}}]},
        ]
    }
    names = sorted(page.locator(".grid-row .run-name").all_inner_texts())
    assert names == ["resnet-adam-1", "resnet-adam-fork", "vit-adam-0"]

    # IN / NOT IN and null
    page.get_by_role("button", name=re.compile("^Filter")).click()
    box = page.get_by_label("Filter expression")
    box.fill("config.optimizer NOT IN (adam, sgd) and config.lr != null")
    box.press("Enter")
    page.wait_for_function("new URLSearchParams(location.search).get('f')?.includes('$nin')")
    assert json.loads(query(page)["f"]) == {
        "$and": [{"config.optimizer": {"$nin": ["adam", "sgd"]}}, {"config.lr": {"$ne": None}}]
    }
    page.get_by_test_id("table-count").filter(has_text=re.compile(r"^\d+ runs?$")).wait_for()
    assert all(n not in page.locator(".grid-row .run-name").all_inner_texts() for n in ("vit-sgd-2", "vit-adam-0"))


# -- run page ------------------------------------------------------------------------------------------------


def test_run_overview_edit_notes_and_tags(page: Any, site: dict[str, Any]) -> None:
    page.goto(run_url(site, "r2"))
    page.get_by_role("heading", level=1, name="vit-sgd-2").wait_for()
    for label in ("Start time", "Duration", "Runtime", "Hostname", "OS", "Python version", "Command", "Run path"):
        assert page.locator("dt", has_text=label).count() >= 1, label
    page.get_by_label("Search config").fill("optim")
    config = page.locator("section", has=page.get_by_role("heading", name="Config"))
    assert config.locator("tbody tr").count() == 1
    page.get_by_label("Search config").fill("")

    page.get_by_role("button", name="Edit description").click()
    page.get_by_role("textbox", name="Description").fill("Best sgd run so far")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("Description saved").wait_for()
    tags = page.get_by_label("Add a tag")
    tags.fill("keeper")
    tags.press("Enter")
    page.locator(".tag-editor .tag", has_text="keeper").wait_for()
    page.get_by_role("button", name="Remove tag sweep").click()
    page.locator(".tag-editor .tag", has_text="sweep").wait_for(state="detached")
    run = get_json(f"{site['base']}/api/v1/runs/{site['entity']}/vision/{site['ids']['r2']['run_id']}")
    assert run["notes"] == "Best sgd run so far"
    assert run["tags"] == ["keeper"]
    page.reload()
    assert page.get_by_test_id("run-notes").inner_text() == "Best sgd run so far"
    shot(page, "run-overview")


def test_forked_from_for_a_fork_and_a_rewind(page: Any, site: dict[str, Any]) -> None:
    page.goto(run_url(site, "fork"))
    forked = page.get_by_test_id("forked-from")
    assert re.search(r"Forked from .*vision/.* at step 120", forked.inner_text())
    forked.get_by_role("link").click()
    page.get_by_role("heading", level=1, name=site["ids"]["r1"]["name"]).wait_for()
    forks = page.get_by_test_id("forks")
    assert "resnet-adam-fork" in forks.inner_text() and "step 120" in forks.inner_text()

    page.goto(run_url(site, "r0"))
    forked = page.get_by_test_id("forked-from")
    archived = site["ids"]["r0"]["incarnation"]
    assert f"Rewound from archived incarnation {archived} at step 150" in forked.inner_text()
    incarnations = page.get_by_test_id("incarnations")
    assert archived in incarnations.inner_text()
    forked.get_by_role("link").click()
    page.wait_for_url(re.compile(f"/incarnations/{archived}$"))
    page.get_by_role("note").filter(has_text="archived incarnation #1").wait_for()
    assert page.get_by_role("button", name="Edit description").count() == 0  # read-only
    page.get_by_role("link", name="Workspace").click()
    page.wait_for_url(re.compile(f"/incarnations/{archived}/workspace$"))
    page.locator(".panel[data-metric='train/loss'] canvas").first.wait_for()
    page.get_by_role("link", name="View the current incarnation").click()
    page.wait_for_url(re.compile(r"/runs/[a-z0-9]+/workspace$"))


def test_run_tabs(page: Any, site: dict[str, Any]) -> None:
    page.goto(run_url(site, "r1", "workspace"))
    page.locator(".panel[data-metric='train/loss'] canvas").first.wait_for()
    page.locator(".panel[data-metric='val/acc'] canvas").first.wait_for()
    shot(page, "run-workspace")

    page.get_by_role("link", name="System").click()
    page.wait_for_url(re.compile(r"/system$"))
    page.locator(".panel[data-metric='cpu'] canvas").first.wait_for()
    shot(page, "run-system")

    page.get_by_role("link", name="Logs").click()
    console = page.get_by_role("log")
    console.get_by_text("epoch 0").wait_for()
    green = console.locator("span[style*='color']", has_text=re.compile(r"^\d\.\d{4}$")).first
    assert green.count() == 1  # ANSI colours are rendered, not printed as escapes
    assert "\x1b" not in console.inner_text()
    shot(page, "run-logs")
    page.get_by_label("Search the logs").fill("warning")
    page.get_by_text("1 of").wait_for()
    assert console.locator(".console-line").count() == 1
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    saved = Path(download.value.path()).read_text()
    assert "epoch 0 train/loss=" in saved and "\x1b" not in saved

    page.get_by_role("link", name="Files").click()
    page.get_by_role("button", name="config.yaml").click()
    page.locator(".file-text", has_text="optimizer: adam").wait_for()
    shot(page, "run-files")

    page.get_by_role("link", name="Artifacts").click()
    page.get_by_text("No artifacts yet.").wait_for()
    shot(page, "run-artifacts")

    page.get_by_role("link", name="Overview").click()
    page.get_by_role("heading", name="Lineage").wait_for()


def test_run_overview_privacy_and_files_tree(page: Any, site: dict[str, Any]) -> None:
    page.goto(run_url(site, "r2"))
    switch = page.get_by_role("switch", name="Project vision is public")
    switch.wait_for()
    assert switch.get_attribute("aria-checked") == "false"
    assert page.get_by_test_id("privacy-state").inner_text().startswith("Private")
    detail = f"{site['base']}/api/v1/projects/{site['entity']}/vision"
    switch.click()
    page.get_by_test_id("privacy-state").filter(has_text="Public").wait_for()
    assert switch.get_attribute("aria-checked") == "true"
    assert get_json(detail)["public"] is True  # stored: projects.public
    page.reload()
    page.get_by_role("switch", name="Project vision is public").wait_for()
    assert page.get_by_role("switch", name="Project vision is public").get_attribute("aria-checked") == "true"
    page.get_by_role("switch", name="Project vision is public").click()
    page.get_by_test_id("privacy-state").filter(has_text="Private").wait_for()
    assert get_json(detail)["public"] is False

    # Files: a tree with folders first, collapsible, and a preview of the selected file
    page.get_by_role("link", name="Files").click()
    tree = page.get_by_role("tree", name="Files of this run")
    tree.locator("li[data-path='config.yaml']").wait_for()
    top = tree.locator(":scope > li").evaluate_all("els => els.map(e => e.dataset.path)")
    assert top[0] == "ckpt" and "config.yaml" in top  # folders first, then files by name
    assert top[1:] == sorted(top[1:])
    ckpt = tree.locator("li[data-path='ckpt']")
    assert ckpt.get_attribute("aria-expanded") == "true"
    assert "2 files" in ckpt.locator(".tree-row").first.inner_text()
    assert tree.locator("li[data-path='ckpt/logs'] li[data-path='ckpt/logs/train.log']").count() == 1
    assert tree.locator("li[data-path='ckpt/logs/train.log']").get_attribute("aria-level") == "3"
    tree.get_by_role("button", name="meta.json").click()
    assert query(page)["file"] == "ckpt/meta.json"
    page.get_by_role("region", name="Preview of ckpt/meta.json").locator(
        ".file-text", has_text='"optimizer": "sgd"'
    ).wait_for()
    assert tree.locator("li[data-path='ckpt/meta.json']").get_attribute("aria-selected") == "true"
    page.get_by_role("button", name="Collapse folder ckpt", exact=True).click()
    assert ckpt.get_attribute("aria-expanded") == "false"
    assert tree.locator("li[data-path='ckpt/meta.json']").count() == 0
    page.get_by_role("button", name="Expand folder ckpt", exact=True).click()
    tree.locator("li[data-path='ckpt/logs'] button", has_text="train.log").click()
    page.locator(".file-text", has_text="finished vit-sgd").wait_for()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download ckpt/logs/train.log").click()
    assert Path(download.value.path()).read_text() == "finished vit-sgd\n"


def test_stop_a_running_run(page: Any, site: dict[str, Any]) -> None:
    root: Path = site["root"]
    proc = subprocess.Popen(
        [sys.executable, "-c", LOOP, str(root)],
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
        # init() returns before the writer process has created the run in the store.
        deadline = time.monotonic() + 30
        while http_status(f"{site['base']}/api/v1/runs/{site['entity']}/vision/{run_id}") != 200:
            assert time.monotonic() < deadline, "the running run never reached the store"
            time.sleep(0.1)
        page.goto(f"/{site['entity']}/vision/runs/{run_id}")
        page.locator(".run-title .state-running").wait_for()
        page.get_by_role("button", name="Stop run").click()
        page.get_by_role("dialog").get_by_role("button", name="Stop run").click()
        page.get_by_role("button", name="Stopping…").wait_for()
        # Meanwhile the page says when the stop was asked for, not just that it is pending.
        page.get_by_test_id("stop-status").filter(has_text="stop requested at").wait_for()
        assert proc.wait(timeout=30) != 0
        page.locator(".run-title .state-killed").wait_for(timeout=20_000)
        assert page.get_by_role("button", name="Stop run").count() == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_move_a_run_from_the_sidebar(page: Any, site: dict[str, Any]) -> None:
    victim = site["ids"]["move-me"]
    page.goto(project_url(site))
    page.get_by_role("button", name=f"Actions for {victim['name']}").click()
    page.get_by_role("menuitem", name="Move to project…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Destination project").fill("archive")
    dialog.get_by_role("button", name="Move").click()
    page.get_by_text("Moved move-me to archive").wait_for()
    page.wait_for_function(
        "![...document.querySelectorAll('.run-list .run-name')].some(a => a.textContent === 'move-me')"
    )
    moved = get_json(f"{site['base']}/api/v1/runs/{site['entity']}/archive/{victim['run_id']}")
    assert moved["project"] == "archive"


def test_delete_a_run_through_the_dialog(page: Any, site: dict[str, Any]) -> None:
    victim = site["ids"]["delete-me"]
    page.goto(run_url(site, "delete-me"))
    page.get_by_role("button", name=f"Actions for {victim['name']}").click()
    page.get_by_role("menuitem", name="Delete run…").click()
    dialog = page.get_by_role("dialog")
    assert "cannot be undone" in dialog.inner_text()
    dialog.get_by_role("button", name="Cancel").click()
    assert http_status(f"{site['base']}/api/v1/runs/{site['entity']}/vision/{victim['run_id']}") == 200
    page.get_by_role("button", name=f"Actions for {victim['name']}").click()
    page.get_by_role("menuitem", name="Delete run…").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.wait_for_url(re.compile(r"/vision$"))
    assert http_status(f"{site['base']}/api/v1/runs/{site['entity']}/vision/{victim['run_id']}") == 404


def test_dark_theme_and_keyboard_menu(page: Any, site: dict[str, Any]) -> None:
    page.goto(project_url(site))
    page.get_by_role("button", name="Switch to dark theme").click()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    page.locator(".panel[data-metric='train/loss'] canvas").first.wait_for()
    shot(page, "workspace-dark")
    # menus open and move with the keyboard, Escape closes and returns focus
    kebab = page.get_by_role("button", name=f"Actions for {site['ids']['r3']['name']}")
    kebab.focus()
    page.keyboard.press("Enter")
    menu = page.get_by_role("menu")
    menu.wait_for()
    page.wait_for_function("document.activeElement.textContent === 'Rename'")
    page.keyboard.press("ArrowDown")
    page.wait_for_function("document.activeElement.textContent === 'Move to project…'")
    page.keyboard.press("Escape")
    menu.wait_for(state="detached")
    assert (
        page.evaluate("document.activeElement.getAttribute('aria-label')") == f"Actions for {site['ids']['r3']['name']}"
    )
    page.get_by_role("button", name="Switch to light theme").click()


def test_a_run_page_opened_before_the_run_exists_shows_it_when_it_arrives(page: Any, site: dict[str, Any]) -> None:
    root: Path = site["root"]
    page.goto(f"/{site['entity']}/arrivals/runs/arrives-later")
    page.get_by_role("status").filter(has_text="shows up here within a few seconds").wait_for()
    assert "not found" in page.locator(".error-text").inner_text().lower()
    page.evaluate("window.__sameDocument = true")  # gone if the page were reloaded
    made = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, branchline\n"
            "run = branchline.init(project='arrivals', id='arrives-later', dir=sys.argv[1], settings={'quiet': True})\n"
            "run.log({'loss': 0.5})\n"
            "run.finish()\n",
            str(root),
        ],
        cwd=root,
        env=ui_env(root),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    page.locator(".run-title .state-finished").wait_for(timeout=20_000)
    assert page.evaluate("window.__sameDocument === true")
    assert page.locator(".error-text").count() == 0
