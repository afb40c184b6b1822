"""The run page as a W&B user expects it (issue 15, points 1, 4, 6 and 7), in real headless Chromium.

One small seed: a run that logs, finishes, pauses ~3 s and is resumed (so its Runtime, wall clock,
exceeds its Duration, active time), logs an artifact and a NaN; a second run uses that artifact.
Screenshots: run-overview-artifacts.png, run-overview-description.png.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import (
    browser_page,
    get_json,
    http_status,
    require_browser_and_app,
    seed_store,
    shot,
    ui_server,
)

pytestmark = pytest.mark.browser

PAUSE = 3.0

SEED = textwrap.dedent(
    """
    import json, os, sys, time
    import branchline

    root = sys.argv[1]
    quiet = {"quiet": True, "x_disable_stats": True}
    run = branchline.init(project="pages", dir=root, id="paused", name="paused-and-resumed", settings=quiet)
    for step in range(5):
        run.log({"loss": 1.0 / (step + 1)})
        time.sleep(0.1)
    run.finish()
    time.sleep(%(pause)s)
    run = branchline.init(project="pages", dir=root, id="paused", resume="allow", settings=quiet)
    for step in range(3):
        run.log({"loss": 0.1 / (step + 1), "val/nan": float("nan")})
        time.sleep(0.1)
    os.makedirs("model", exist_ok=True)
    with open("model/weights.bin", "wb") as fh:
        fh.write(b"w" * 2048)
    art = branchline.Artifact("tiny-model", "model")
    art.add_dir("model")
    run.log_artifact(art, aliases=["best"])
    incarnation = run._start.incarnation_id
    run.finish()

    user = branchline.init(project="pages", dir=root, id="consumer", name="consumer-run", settings=quiet)
    user.use_artifact("tiny-model:latest")
    user.log({"acc": 0.5})
    user.finish()
    print("IDS=" + json.dumps({"paused": "paused", "consumer": "consumer", "incarnation": incarnation}))
    """
) % {"pause": PAUSE}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_browser_and_app()
    root = tmp_path_factory.mktemp("ui-run-page")
    ids = seed_store(root, SEED)
    with ui_server(root) as base:
        entity = get_json(f"{base}/api/v1/projects")["projects"][0]["entity"]
        yield {"base": base, "ids": ids, "entity": entity}


@pytest.fixture
def page(browser: Any, site: dict[str, Any]) -> Iterator[Any]:
    with browser_page(browser, site["base"]) as tab:
        yield tab


def run_url(site: dict[str, Any], run_id: str = "paused", tab: str = "") -> str:
    return f"/{site['entity']}/pages/runs/{run_id}" + (f"/{tab}" if tab else "")


def api_run(site: dict[str, Any], run_id: str = "paused") -> dict[str, Any]:
    return dict(get_json(f"{site['base']}/api/v1/runs/{site['entity']}/pages/{run_id}"))


def seconds(text: str) -> float:
    """Seconds from the web app's duration format: 250ms, 5.3s, 42s, 2m 5s."""
    text = text.strip()
    if m := re.fullmatch(r"(\d+)ms", text):
        return int(m[1]) / 1000
    if m := re.fullmatch(r"([\d.]+)s", text):
        return float(m[1])
    if m := re.fullmatch(r"(\d+)m (\d+)s", text):
        return int(m[1]) * 60 + int(m[2])
    raise AssertionError(f"not a duration: {text!r}")


# -- 1. Runtime (wall clock, pauses included) >= Duration (active time) --------------------------------
def test_runtime_counts_the_pause_and_duration_does_not(page: Any, site: dict[str, Any]) -> None:
    run = api_run(site)
    assert run["runtime"] >= run["duration"] + PAUSE * 0.8, run
    assert run["summary"]["_runtime"] == pytest.approx(run["runtime"], abs=0.5)

    page.goto(run_url(site))
    page.get_by_role("heading", level=1, name="paused-and-resumed").wait_for()
    runtime = seconds(page.get_by_test_id("run-runtime").inner_text())
    duration = seconds(page.get_by_test_id("run-duration").inner_text())
    assert runtime >= duration + PAUSE * 0.8, (runtime, duration)
    summary = page.locator("section", has=page.get_by_role("heading", name="Summary"))
    shown = summary.locator("tr", has=page.locator("th", has_text=re.compile(r"^_runtime$"))).locator("td")
    assert float(shown.inner_text()) == pytest.approx(run["runtime"], abs=0.5)

    # The runs table's Runtime column is the wall clock too.
    page.goto(f"/{site['entity']}/pages/table")
    header = page.locator(".grid-header [role=columnheader]")
    header.first.wait_for()
    columns = [header.nth(i).get_attribute("data-column") for i in range(header.count())]
    cell = page.locator(".grid-row[data-run-id='paused'] [role=gridcell]").nth(columns.index("runtime"))
    assert seconds(cell.inner_text()) >= duration + PAUSE * 0.8


# -- 4. NaN, unsaved description, tab title ---------------------------------------------------------
def test_a_nan_summary_value_shows_as_nan_not_as_missing(page: Any, site: dict[str, Any]) -> None:
    assert api_run(site)["summary"]["val/nan"] == "NaN"
    page.goto(run_url(site))
    summary = page.locator("section", has=page.get_by_role("heading", name="Summary"))
    row = summary.locator("tr", has=page.locator("th", has_text="val/nan"))
    row.wait_for()
    assert row.locator("td").inner_text() == "NaN"


def test_description_edited_with_the_pencil_keeps_an_unsaved_draft(page: Any, site: dict[str, Any]) -> None:
    page.goto(run_url(site))
    page.get_by_role("heading", level=1, name="paused-and-resumed").wait_for()
    assert page.get_by_role("textbox", name="Description").count() == 0  # shown as text until the pencil is clicked
    page.get_by_role("button", name="Edit description").click()
    page.get_by_role("textbox", name="Description").fill("A draft I have not saved")
    page.get_by_role("link", name="Logs").click()
    page.get_by_text("unsaved description is kept as a draft").wait_for()
    page.get_by_role("link", name="Overview").click()
    assert page.get_by_role("textbox", name="Description").input_value() == "A draft I have not saved"
    page.get_by_role("note").filter(has_text="Unsaved draft").wait_for()

    page.get_by_role("button", name="Cancel").click()
    assert page.get_by_test_id("run-notes").inner_text() == "Add a description of this run"
    page.get_by_role("button", name="Edit description").click()
    page.get_by_role("textbox", name="Description").fill("Resumed after a pause")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("Description saved").wait_for()
    page.get_by_test_id("run-notes").filter(has_text="Resumed after a pause").wait_for()
    assert api_run(site)["notes"] == "Resumed after a pause"
    page.get_by_text("unsaved description is kept as a draft").wait_for(state="detached")  # that toast has gone
    shot(page, "run-overview-description")


def test_the_tab_title_names_the_page(page: Any, site: dict[str, Any]) -> None:
    page.goto("/")
    page.wait_for_function("document.title === 'Projects · branchline'")
    page.goto(f"/{site['entity']}/pages/table")
    page.wait_for_function(f"document.title === 'Runs · {site['entity']}/pages · branchline'")
    page.goto(run_url(site, tab="logs"))
    page.wait_for_function(f"document.title === 'paused-and-resumed · Logs · {site['entity']}/pages · branchline'")


# -- 6. Overview: artifacts, the "…" menu, run privacy ------------------------------------------------
def test_overview_lists_artifact_outputs_and_inputs_with_links(page: Any, site: dict[str, Any]) -> None:
    page.goto(run_url(site))
    outputs = page.locator("section", has=page.get_by_role("heading", name="Artifact Outputs"))
    link = outputs.get_by_role("link", name="tiny-model:v0")
    link.wait_for()
    assert "model" in outputs.inner_text() and "best" in outputs.inner_text()
    shot(page, "run-overview-artifacts")
    link.click()
    page.wait_for_url(re.compile(r"/runs/paused/artifacts$"))

    page.goto(run_url(site, "consumer"))
    inputs = page.locator("section", has=page.get_by_role("heading", name="Artifact Inputs"))
    inputs.get_by_role("link", name="tiny-model:v0").wait_for()
    outputs = page.locator("section", has=page.get_by_role("heading", name="Artifact Outputs"))
    assert "logged no artifacts" in outputs.inner_text()


def test_copy_immutable_run_id_from_the_overview_menu(page: Any, site: dict[str, Any]) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site["base"])
    page.goto(run_url(site))
    page.get_by_role("button", name="More actions for this run").click()
    page.get_by_role("menuitem", name="Copy immutable run ID").click()
    incarnation = site["ids"]["incarnation"]
    page.get_by_text(f"Copied immutable run ID {incarnation}").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == incarnation


def test_privacy_is_set_on_the_run(page: Any, site: dict[str, Any]) -> None:
    page.goto(run_url(site, "consumer"))
    switch = page.get_by_role("switch", name="Run consumer-run is private")
    assert switch.get_attribute("aria-checked") == "false"
    switch.click()
    page.get_by_test_id("run-privacy-state").filter(has_text="Private").wait_for()
    assert api_run(site, "consumer")["private"] is True
    assert api_run(site)["private"] is False  # the other run of the project is untouched
    page.get_by_role("switch", name="Run consumer-run is private").click()
    page.get_by_test_id("run-privacy-state").filter(has_text="Visible").wait_for()
    assert api_run(site, "consumer")["private"] is False


# -- 7. /<entity>/<project>/<run-id> ------------------------------------------------------------------
def test_the_short_run_url_opens_the_run(page: Any, site: dict[str, Any]) -> None:
    short = f"/{site['entity']}/pages/paused"
    assert http_status(site["base"] + short) == 200  # the server serves the app there
    page.goto(short)
    page.get_by_role("heading", level=1, name="paused-and-resumed").wait_for()
    assert page.get_by_role("heading", name="Page not found").count() == 0
    # Project views keep their paths: they are never taken for run ids.
    page.goto(f"/{site['entity']}/pages/table")
    page.get_by_test_id("table-count").wait_for()
    page.goto(f"/{site['entity']}/pages/workspace")
    page.wait_for_function("document.title.startsWith('Workspace')")
    assert page.get_by_role("heading", level=1, name="paused-and-resumed").count() == 0
    # The long form still works.
    page.goto(run_url(site))
    page.get_by_role("heading", level=1, name="paused-and-resumed").wait_for()
