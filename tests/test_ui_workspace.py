"""The editable workspace, in real headless Chromium against a `branchline ui` process: add a panel
with several metrics, move and resize panels, per-panel settings (log scale, smoothing, x-axis,
maximum runs), remove one; the layout is saved on the server (a fresh browser context sees it), and
"Reset workspace" brings back the automatic one. Media keys are panels of the layout too.

Saves the screenshot `workspace-edited` (into docs/screenshots/ with BRANCHLINE_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from branchline.store import open_store
from tests.backends import ServerProcess
from tests.browser import browser_page, get_json, require_browser_and_app, seed_store, shot, ui_server
from tests.store_factory import add_run

pytestmark = pytest.mark.browser

SEED = textwrap.dedent(
    """
    import json, math, sys
    import branchline

    root = sys.argv[1]
    ids = {}
    for i, name in enumerate(["alpha", "beta", "gamma"]):
        run = branchline.init(project="ws", dir=root, name=name, config={"lr": 0.1 * (i + 1)}, settings={"quiet": True})
        for step in range(12):
            row = {"loss": 1.0 / (step + 1 + i), "acc": 0.5 + 0.04 * step, "val/loss": 2.0 / (step + 1 + i),
                   "val/acc": 0.4 + 0.03 * step}
            if step % 4 == 0:
                row["grads"] = branchline.Histogram([math.sin(k + step) for k in range(50)])
            run.log(row)
        ids[name] = run.id
        run.finish()
    print("IDS=" + json.dumps(ids))
    """
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_browser_and_app()
    root = tmp_path_factory.mktemp("ui-workspace")
    ids = seed_store(root, SEED)
    with ui_server(root) as base:
        entity = get_json(f"{base}/api/v1/projects")["projects"][0]["entity"]
        yield {"base": base, "ids": ids, "entity": entity}


def panel(page: Any, metrics: str) -> Any:
    return page.locator(f".panel-editable[data-metrics='{metrics}']")


def layout_of(page: Any) -> list[tuple[str, list[str]]]:
    """(section name, [panel keys joined by ","]) as shown, in order."""
    result: list[tuple[str, list[str]]] = page.evaluate(
        """() => [...document.querySelectorAll('.editable-workspace section.section')].map((s) =>
            [s.dataset.section, [...s.querySelectorAll('.panel-editable')].map((p) => p.dataset.metrics)])"""
    )
    return [(name, list(panels)) for name, panels in result]


def drag(page: Any, handle: Any, target: Any, at: float) -> None:
    """Drag `handle` with the mouse to `at` of `target`'s width (left of its middle: before it)."""
    handle.scroll_into_view_if_needed()
    start = handle.bounding_box()
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    target.scroll_into_view_if_needed()
    box = target.bounding_box()
    page.mouse.move(box["x"] + box["width"] * at, box["y"] + box["height"] / 2, steps=6)
    page.mouse.up()


def status(page: Any) -> str:
    return str(page.get_by_test_id("workspace-status").inner_text())


def wait_saved(page: Any) -> None:
    page.wait_for_function("document.querySelector('[data-testid=workspace-status]')?.textContent === 'Saved layout'")


def open_workspace(page: Any, site: dict[str, Any]) -> None:
    page.goto(f"/{site['entity']}/ws")
    page.get_by_test_id("workspace-status").wait_for()
    page.locator(".panel-editable[data-metrics='loss'] canvas, .panel-editable canvas").first.wait_for()


def test_edit_the_workspace_save_it_on_the_server_and_reset_it(browser: Any, site: dict[str, Any]) -> None:
    saved_url = f"{site['base']}/api/v1/projects/{site['entity']}/ws/workspace"
    with browser_page(browser, site["base"], height=1250) as page:
        open_workspace(page, site)
        assert status(page) == "Automatic layout"
        automatic = layout_of(page)
        assert automatic == [("Charts", ["acc", "grads", "loss"]), ("val", ["val/acc", "val/loss"])]
        # The media key is a panel of the layout, drawn by the media panel.
        assert panel(page, "grads").get_attribute("data-kind") == "media"
        assert panel(page, "grads").locator(".media-panel").count() == 1

        # Add a panel charting two metrics together, two columns wide.
        page.locator(".workspace-bar").get_by_role("button", name="+ Add panel").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Filter keys").fill("l")
        dialog.get_by_role("checkbox", name="loss", exact=True).check()
        dialog.get_by_label("Filter keys").fill("")
        dialog.get_by_role("checkbox", name="acc", exact=True).check()
        dialog.get_by_label("Title").fill("Loss and accuracy")
        dialog.get_by_label("Width").select_option("2")
        dialog.get_by_role("button", name="Add panel").click()
        wait_saved(page)
        both = panel(page, "loss,acc")
        both.scroll_into_view_if_needed()  # panels load their data once scrolled to
        both.locator("canvas").first.wait_for()
        assert both.get_attribute("data-w") == "2"
        assert "Loss and accuracy" in both.locator(".chart-title").first.inner_text()
        legend = both.locator(".legend-name").all_inner_texts()
        assert {"alpha · loss", "alpha · acc", "gamma · loss", "gamma · acc"} <= set(legend), legend
        assert layout_of(page)[0] == ("Charts", ["acc", "grads", "loss", "loss,acc"])

        # Move it by dragging its handle onto the first panel of the "val" section.
        drag(page, both.locator(".panel-move"), panel(page, "val/acc"), 0.25)
        page.wait_for_function(
            "document.querySelector(\"section[data-section='val'] .panel-editable\")?.dataset.metrics === 'loss,acc'"
        )
        wait_saved(page)
        assert layout_of(page) == [("Charts", ["acc", "grads", "loss"]), ("val", ["loss,acc", "val/acc", "val/loss"])]

        # Resize "loss" by dragging its corner: one column wider and one row taller.
        loss = panel(page, "loss")
        before = loss.bounding_box()
        canvas_before = loss.locator("canvas").first.bounding_box()
        handle = loss.locator(".panel-resize").bounding_box()
        page.mouse.move(handle["x"] + 5, handle["y"] + 5)
        page.mouse.down()
        page.mouse.move(handle["x"] + before["width"] * 0.8, handle["y"] + 320, steps=8)
        page.mouse.up()
        page.wait_for_function("document.querySelector(\".panel-editable[data-metrics='loss']\")?.dataset.h === '2'")
        wait_saved(page)
        assert loss.get_attribute("data-w") == "2"
        page.wait_for_function(
            f"document.querySelector(\".panel-editable[data-metrics='loss'] canvas\")?.getBoundingClientRect().height"
            f" > {canvas_before['height'] + 200}"
        )
        assert loss.bounding_box()["width"] > before["width"] * 1.6

        # Per-panel settings: log scale, smoothing, relative time on x, at most one run.
        acc = panel(page, "acc")
        acc.get_by_role("button", name="Edit panel acc").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Y-axis scale").select_option("log")
        dialog.get_by_label("Smoothing").fill("0.6")
        dialog.get_by_label("X-axis").select_option("_runtime")
        dialog.get_by_label("Maximum runs shown").fill("1")
        dialog.get_by_role("button", name="Save panel").click()
        wait_saved(page)
        assert (acc.get_attribute("data-log"), acc.get_attribute("data-smoothing")) == ("1", "0.6")
        assert (acc.get_attribute("data-x"), acc.get_attribute("data-runs")) == ("_runtime", "1")
        acc.scroll_into_view_if_needed()
        acc.locator("canvas").first.wait_for()
        assert acc.locator(".legend-name").all_inner_texts() == ["gamma"]  # the first visualized run (newest)
        # The other panels keep the workspace's settings.
        assert (loss.get_attribute("data-log"), loss.get_attribute("data-x")) == ("0", "_step")

        # Remove a panel.
        panel(page, "val/loss").get_by_role("button", name="Remove panel val/loss").click()
        page.wait_for_function("!document.querySelector(\".panel-editable[data-metrics='val/loss']\")")
        wait_saved(page)
        edited = layout_of(page)
        assert edited == [("Charts", ["acc", "grads", "loss"]), ("val", ["loss,acc", "val/acc"])]
        page.evaluate("window.scrollTo(0, 0)")
        panel(page, "loss").locator("canvas").first.wait_for()
        shot(page, "workspace-edited")

        # Reloaded, the page shows the saved layout.
        page.reload()
        page.get_by_test_id("workspace-status").wait_for()
        assert status(page) == "Saved layout"
        panel(page, "loss,acc").scroll_into_view_if_needed()
        panel(page, "loss,acc").locator("canvas").first.wait_for()
        assert layout_of(page) == edited

    saved = get_json(saved_url)
    assert saved["version"] >= 5 and saved["layout"]["sections"][1]["panels"][0]["keys"] == ["loss", "acc"]

    # A fresh browser context (nothing kept in the browser) sees the same layout and settings.
    with browser_page(browser, site["base"]) as other:
        open_workspace(other, site)
        assert status(other) == "Saved layout"
        assert layout_of(other) == edited
        acc = panel(other, "acc")
        assert (acc.get_attribute("data-log"), acc.get_attribute("data-x"), acc.get_attribute("data-runs")) == (
            "1",
            "_runtime",
            "1",
        )
        assert (panel(other, "loss").get_attribute("data-w"), panel(other, "loss").get_attribute("data-h")) == (
            "2",
            "2",
        )

        # Reset to the automatic layout, confirmed in a dialog.
        other.locator(".workspace-bar").get_by_role("button", name="Reset workspace").click()
        other.get_by_role("dialog").get_by_role("button", name="Reset workspace").click()
        other.wait_for_function(
            "document.querySelector('[data-testid=workspace-status]')?.textContent === 'Automatic layout'"
        )
        assert layout_of(other) == automatic
        assert panel(other, "loss").get_attribute("data-w") == "1"
    assert get_json(saved_url)["layout"] is None

    with browser_page(browser, site["base"]) as third:
        open_workspace(third, site)
        assert status(third) == "Automatic layout" and layout_of(third) == automatic


def test_run_pages_share_their_own_editable_layout(browser: Any, site: dict[str, Any]) -> None:
    entity, ids = site["entity"], site["ids"]
    with browser_page(browser, site["base"]) as page:
        page.goto(f"/{entity}/ws/runs/{ids['alpha']}/workspace")
        page.get_by_test_id("workspace-status").wait_for()
        page.locator(".panel-editable canvas").first.wait_for()
        assert status(page) == "Automatic layout"
        # The same panel types as the project's workspace: line charts and the media key's panel.
        assert layout_of(page) == [("Charts", ["acc", "grads", "loss"]), ("val", ["val/acc", "val/loss"])]
        assert panel(page, "grads").locator(".media-panel").count() == 1
        panel(page, "acc").get_by_role("button", name="Remove panel acc").click()
        wait_saved(page)

        # Another run of the project shows the run pages' saved layout; the project's workspace does not.
        page.goto(f"/{entity}/ws/runs/{ids['beta']}/workspace")
        panel(page, "val/acc").wait_for()
        assert status(page) == "Saved layout"
        assert layout_of(page) == [("Charts", ["grads", "loss"]), ("val", ["val/acc", "val/loss"])]
        page.goto(f"/{entity}/ws")
        panel(page, "acc").wait_for()
        assert status(page) == "Automatic layout"
        run_view = get_json(f"{site['base']}/api/v1/projects/{entity}/ws/workspace?view=run")
        assert run_view["version"] == 1 and "acc" in run_view["layout"]["seen_keys"]


def test_readers_of_a_public_project_see_the_saved_layout_without_editing(browser: Any, tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as store:
        store.create_user("alice")
        key = store.create_api_key("alice")[1]
        history = [(s, {"loss": 1.0 / (s + 1), "acc": s / 10}) for s in range(10)]
        add_run(store, entity="alice", project="open-proj", run_id="run-1", name="public-run", history=history)
        store.set_project_public("alice", "open-proj", True)
    server = ServerProcess(url, tmp_path, extra_args=["--auth"])
    server.start()
    try:
        layout = {"sections": [{"id": "s", "name": "Mine", "panels": [{"id": "p", "keys": ["loss", "acc"], "w": 2}]}]}
        saved = httpx.put(
            f"{server.base_url}/api/v1/projects/alice/open-proj/workspace",
            json={"layout": layout, "base_version": 0},
            headers={"Authorization": f"Bearer {key}", "X-Branchline-Client": "web"},
        )
        assert saved.status_code == 200, saved.text
        with browser_page(browser, server.base_url) as page:
            page.goto("/alice/open-proj")
            page.locator(".panel[data-metrics='loss,acc'] canvas").first.wait_for()
            page.wait_for_function("!document.querySelector('.workspace-bar')")
            assert page.locator("section[data-section]").first.get_attribute("data-section") == "Mine"
            assert page.locator(".panel[data-metrics]").count() == 1
            assert page.locator(".panel-tools, .panel-resize").count() == 0
            assert page.locator(".panel[data-metrics='loss,acc']").get_attribute("data-w") == "2"
    finally:
        server.stop()
