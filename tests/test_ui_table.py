"""The runs table's column menu, pins, Notes, the expanded sidebar, run comparison, grouped runtimes
and run-name truncation, in real headless Chromium against a `branchline ui` process.

Saves the screenshots `runs-table-column-menu` and `compare-runs` (into docs/screenshots/ with
BRANCHLINE_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.browser import browser_page, get_json, require_browser_and_app, seed_store, shot, ui_server

pytestmark = pytest.mark.browser

LONG_NAME = "resnet-adam-lr-sweep-baseline-fork-3"
LONG_KEY = "data_augmentation_pipeline_random_resized_crop_scale"

SEED = textwrap.dedent(
    f"""
    import json, sys
    import branchline

    root = sys.argv[1]
    ids = {{}}
    specs = [
        ("{LONG_NAME}", "adam", 1e-3, "vit", "Baseline with the long name."),
        ("vit-sgd-1", "sgd", 1e-2, "vit", "Higher learning rate.\\nSecond line."),
        ("vit-sgd-2", "sgd", 1e-2, "resnet", ""),
    ]
    for i, (name, opt, lr, arch, notes) in enumerate(specs):
        run = branchline.init(project="sweeps", dir=root, name=name, notes=notes or None,
                              config={{"optimizer": opt, "lr": lr, "seed": 7,
                                      "model": {{"arch": arch, "layers": 12}}, "{LONG_KEY}": 0.08 * (i + 1)}},
                              settings={{"quiet": True}})
        for step in range(5):
            run.log({{"loss": 1.0 / (step + 1 + i), "acc": 0.5 + 0.1 * i}})
        ids[name] = run.id
        run.finish()
    print("IDS=" + json.dumps(ids))
    """
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_browser_and_app()
    root = tmp_path_factory.mktemp("ui-table")
    ids = seed_store(root, SEED)
    with ui_server(root) as base:
        entity = get_json(f"{base}/api/v1/projects")["projects"][0]["entity"]
        yield {"base": base, "ids": ids, "entity": entity}


@pytest.fixture
def page(browser: Any, site: dict[str, Any]) -> Iterator[Any]:
    with browser_page(browser, site["base"]) as tab:
        yield tab


def url(site: dict[str, Any], tail: str = "") -> str:
    return f"/{site['entity']}/sweeps" + (f"/{tail}" if tail else "")


def query(page: Any) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(page.url).query))


def open_table(page: Any, site: dict[str, Any]) -> Any:
    page.goto(url(site, "table"))
    page.evaluate("localStorage.clear()")
    page.reload()
    page.get_by_test_id("table-count").filter(has_text="3 runs").wait_for()
    return page.get_by_role("grid")


def header_ids(page: Any) -> list[str]:
    return [
        str(h)
        for h in page.locator(".grid-header [role=columnheader][data-column]").evaluate_all(
            "els => els.map(e => e.dataset.column)"
        )
    ]


def first_names(page: Any) -> list[str]:
    return [str(t) for t in page.locator(".grid-row .run-name").evaluate_all("els => els.map(e => e.title)")]


def test_column_menu_sorts_pins_and_hides(page: Any, site: dict[str, Any]) -> None:
    grid = open_table(page, site)
    grid.get_by_role("button", name="Column menu for Runtime").click()
    menu = page.get_by_role("menu", name="Column menu for Runtime")
    assert menu.get_by_role("menuitem").all_inner_texts() == ["Sort Asc", "Sort Desc", "Pin column", "Hide column"]
    shot(page, "runs-table-column-menu")
    page.keyboard.press("Escape")  # closes without choosing
    assert page.get_by_role("menu").count() == 0
    assert "sort" not in query(page)

    grid.get_by_role("button", name="Column menu for config.lr").click()
    page.get_by_role("menuitem", name="Sort Asc").click()
    assert query(page)["sort"] == "+config.lr"
    page.wait_for_function(
        "document.querySelector('.grid-row[aria-rowindex=\"2\"] .run-name')?.title.startsWith('resnet')"
    )

    grid.get_by_role("button", name="Column menu for config.lr").click()
    page.get_by_role("menuitem", name="Sort Desc").click()
    assert query(page)["sort"] == "-config.lr"
    page.wait_for_function(
        "document.querySelector('.grid-row[aria-rowindex=\"4\"] .run-name')?.title.startsWith('resnet')"
    )

    grid.get_by_role("button", name="Column menu for config.lr").click()
    page.get_by_role("menuitem", name="Pin column").click()
    assert header_ids(page)[:2] == ["name", "config:lr"]
    assert query(page)["pin"] == "config:lr"
    grid.get_by_role("button", name="Column menu for config.lr").click()
    page.get_by_role("menuitem", name="Unpin column").click()
    assert "pin" not in query(page)

    grid.get_by_role("button", name="Column menu for Group").click()
    page.get_by_role("menuitem", name="Hide column").click()
    assert "group" not in header_ids(page)
    total = len(header_ids(page)) + 1
    assert page.get_by_role("button", name=re.compile(r"^Columns \(")).inner_text() == f"Columns ({total - 1}/{total})"
    # the Name column sorts but is neither pinned nor hidden
    grid.get_by_role("button", name="Column menu for Name").click()
    assert page.get_by_role("menuitem").all_inner_texts() == ["Sort Asc", "Sort Desc"]


def test_columns_popup_has_pin_icons(page: Any, site: dict[str, Any]) -> None:
    open_table(page, site)
    page.get_by_role("button", name=re.compile(r"^Columns \(")).click()
    popup = page.get_by_role("dialog", name="Show or hide columns")
    pin = popup.get_by_role("button", name="Pin config.optimizer")
    assert pin.get_attribute("aria-pressed") == "false"
    pin.click()
    assert popup.get_by_role("button", name="Unpin config.optimizer").get_attribute("aria-pressed") == "true"
    assert header_ids(page)[:2] == ["name", "config:optimizer"]
    assert "sticky" in (page.locator(".grid-header [data-column='config:optimizer']").get_attribute("class") or "")
    popup.get_by_role("button", name="Unpin config.optimizer").click()
    assert popup.get_by_role("button", name="Pin config.optimizer").get_attribute("aria-pressed") == "false"
    assert "sticky" not in (page.locator(".grid-header [data-column='config:optimizer']").get_attribute("class") or "")
    assert "pin" not in query(page)


def test_notes_column_shows_notes(page: Any, site: dict[str, Any]) -> None:
    grid = open_table(page, site)
    assert grid.get_by_role("columnheader", name="Notes", exact=True).count() == 1
    row = page.locator(f".grid-row[data-run-id='{site['ids']['vit-sgd-1']}']")
    cell = row.locator("[data-column=notes]")
    text = cell.locator(".notes-text")
    assert text.inner_text().strip() == "Higher learning rate."  # the first line; all of it on hover
    assert text.get_attribute("title") == "Higher learning rate.\nSecond line."
    assert page.locator(f".grid-row[data-run-id='{site['ids']['vit-sgd-2']}'] .notes-text").inner_text().strip() == "–"


def test_sidebar_expands_into_the_table_and_back(page: Any, site: dict[str, Any]) -> None:
    page.goto(url(site) + "?trunc=end&show=5")
    page.get_by_test_id("run-count").filter(has_text="3 runs").wait_for()
    page.get_by_role("button", name="Expand the runs table").click()
    page.wait_for_url(re.compile(r"/sweeps/table\?"))
    page.get_by_role("grid").wait_for()
    assert query(page) == {"trunc": "end", "show": "5"}  # the workspace's settings travel along
    page.get_by_role("link", name="Collapse the runs table into the sidebar").click()
    page.wait_for_url(re.compile(r"/sweeps\?"))
    page.get_by_role("complementary", name="Runs").wait_for()
    assert query(page) == {"trunc": "end", "show": "5"}
    assert page.get_by_role("grid").count() == 0


def test_pinned_column_shows_in_the_workspace_run_selector(page: Any, site: dict[str, Any]) -> None:
    grid = open_table(page, site)
    grid.get_by_role("button", name="Column menu for config.optimizer").click()
    page.get_by_role("menuitem", name="Pin column").click()
    grid.get_by_role("button", name="Column menu for State").click()
    page.get_by_role("menuitem", name="Pin column").click()
    grid.get_by_role("button", name="Column menu for State").click()
    page.get_by_role("menuitem", name="Hide column").click()  # pinned but hidden: not in the selector
    page.goto(url(site))  # a plain link: the layout is remembered per project
    sidebar = page.get_by_role("complementary", name="Runs")
    page.get_by_test_id("run-count").filter(has_text="3 runs").wait_for()
    row = sidebar.locator(f".run-row[data-run-id='{site['ids']['vit-sgd-1']}']")
    assert row.locator("[data-column='config:optimizer']").inner_text().strip() == "sgd"
    assert row.locator("[data-column=state]").count() == 0
    pair = row.locator(".selector-pair")
    assert pair.get_attribute("title") == "config.optimizer: sgd"
    assert pair.locator(".selector-label").inner_text().strip() == "optimizer"


def test_compare_two_runs_highlights_differences(page: Any, site: dict[str, Any]) -> None:
    grid = open_table(page, site)
    grid.get_by_label(f"Select {LONG_NAME}").check()
    grid.get_by_label("Select vit-sgd-1").check()
    page.get_by_role("button", name="Compare 2 runs").click()
    page.wait_for_url(re.compile(r"/sweeps/compare\?runs="))
    ids = query(page)["runs"].split(",")
    assert sorted(ids) == sorted([site["ids"][LONG_NAME], site["ids"]["vit-sgd-1"]])
    config = page.get_by_role("table", name="Config compared")
    config.locator("tr[data-key='optimizer']").wait_for()
    assert "differs" in (config.locator("tr[data-key='optimizer']").get_attribute("class") or "")
    assert "differs" not in (config.locator("tr[data-key='seed']").get_attribute("class") or "")
    assert config.locator("tr[data-key='model.arch'] td").all_inner_texts() == ["vit", "vit"]
    summary = page.get_by_role("table", name="Summary compared")
    assert "differs" in (summary.locator("tr[data-key='loss']").get_attribute("class") or "")
    shot(page, "compare-runs")

    page.get_by_label("Only differences").check()
    assert query(page)["diff"] == "1"
    assert config.locator("tr[data-key='seed']").count() == 0
    assert config.locator("tr[data-key='optimizer']").count() == 1

    # reachable by URL, with three runs and the filter on
    three = ",".join(site["ids"][n] for n in (LONG_NAME, "vit-sgd-1", "vit-sgd-2"))
    page.goto(url(site, f"compare?runs={three}&diff=1"))
    config.locator("tr[data-key='model.arch']").wait_for()
    assert config.locator("thead th").count() == 4
    assert page.get_by_label("Only differences").is_checked()
    assert config.locator("tr[data-key='seed']").count() == 0
    # a run that does not exist is named, the others are still compared
    page.goto(url(site, f"compare?runs={site['ids']['vit-sgd-2']},nosuchrun"))
    page.get_by_role("alert").filter(has_text="nosuchrun").wait_for()
    config.locator("tr[data-key='optimizer']").wait_for()


def test_group_by_select_fits_the_sidebar(page: Any, site: dict[str, Any]) -> None:
    page.goto(url(site))
    page.get_by_test_id("run-count").filter(has_text="3 runs").wait_for()
    sidebar = page.get_by_role("complementary", name="Runs").bounding_box()
    page.get_by_label("Group by").select_option(f"{LONG_KEY}")
    select = page.get_by_label("Group by").bounding_box()
    assert sidebar and select
    assert select["x"] >= sidebar["x"] and select["x"] + select["width"] <= sidebar["x"] + sidebar["width"], (
        select,
        sidebar,
    )


def test_grouped_runtime_range_is_a_duration(page: Any, site: dict[str, Any]) -> None:
    open_table(page, site)
    page.get_by_label("Group rows by").select_option("config:optimizer")
    cell = page.locator("tr[data-group='sgd'] td[data-column=runtime] figcaption")
    text = cell.inner_text().strip()
    duration = r"(\d+ms|\d+(\.\d)?s|\d+m \d+s|\d+h \d+m|\d+d \d+h)"
    assert re.fullmatch(rf"{duration}( – {duration})?", text), text
    label = page.locator("tr[data-group='sgd'] td[data-column=runtime] svg").get_attribute("aria-label") or ""
    assert re.search(rf"from {duration} to {duration}$", label), label


def test_run_names_are_truncated_in_the_middle(page: Any, site: dict[str, Any]) -> None:
    page.goto(url(site))
    page.get_by_test_id("run-count").filter(has_text="3 runs").wait_for()
    link = page.locator(f".run-row[data-run-id='{site['ids'][LONG_NAME]}'] .run-name")
    text = link.inner_text().strip()
    assert "…" in text and text.startswith("resnet") and text.endswith("fork-3"), text
    assert link.get_attribute("title") == LONG_NAME
    assert page.get_by_label("Truncate").input_value() == "middle"
    page.get_by_label("Truncate").select_option("end")
    page.wait_for_function(
        f"document.querySelector(\".run-row[data-run-id='{site['ids'][LONG_NAME]}'] .run-name\").textContent.endsWith('…')"
    )
    page.get_by_label("Truncate").select_option("start")
    page.wait_for_function(
        f"document.querySelector(\".run-row[data-run-id='{site['ids'][LONG_NAME]}'] .run-name\").textContent.startsWith('…')"
    )
    page.get_by_label("Truncate").select_option("middle")
    # the table truncates the same way, with the full name on hover
    page.goto(url(site, "table"))
    cell = page.locator(f".grid-row[data-run-id='{site['ids'][LONG_NAME]}'] .run-name")
    cell.wait_for()
    assert cell.get_attribute("title") == LONG_NAME
    shown = cell.inner_text().strip()
    assert shown.startswith("resnet") and shown.endswith("fork-3") and "…" in shown, shown
