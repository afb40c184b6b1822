"""A table and a list of boxed images logged by the real wandb client, in the web app: the table
panel and the Files tab show the whole table (kept in a `run_table` artifact), image thumbnails
that load; the image panel draws the list's boxes and masks. Screenshot: media-wandb-table."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import browser_page, chromium, require_browser_and_app, shot, ui_server
from tests.test_server_media_wandb import SCRIPT, log_with_wandb

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

#: SCRIPT without the tables per epoch (fewer uploads: the wandb client's start-up is most of the time).
SHORT = SCRIPT.partition("for epoch in range(2):")[0] + "run.finish()\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser_and_app()
    root = tmp_path_factory.mktemp("ui-media-wandb")
    log_with_wandb(root, SHORT)
    with ui_server(root) as base:
        yield base


@pytest.fixture
def page(site: str) -> Iterator[Any]:
    with chromium() as browser, browser_page(browser, site, height=1000) as tab:
        yield tab


def _thumbnails_load(page: Any, table: Any) -> None:
    table.locator("tbody tr").first.wait_for()
    assert table.locator("tbody tr").count() == 3
    thumbs = table.locator("tbody img")
    assert thumbs.count() == 3
    for i in range(3):
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=thumbs.nth(i).element_handle())
    assert [t.strip() for t in table.locator("tbody tr td:nth-child(3)").all_inner_texts()] == ["l0", "l1", "l2"]


def test_wandb_client_media_in_panels_and_files(page: Any) -> None:
    page.goto("/alice/media")
    table = page.locator(".media-panel[data-metric='tab']")
    table.scroll_into_view_if_needed()
    _thumbnails_load(page, table)
    table.evaluate("(e) => e.scrollIntoView({block: 'center'})")
    shot(page, "media-wandb-table")
    # The list of images: each with its box and its mask drawn over it.
    images = page.locator(".media-panel[data-metric='examples']")
    images.scroll_into_view_if_needed()
    images.locator(".media-run img").nth(1).wait_for()
    page.wait_for_function(
        "() => document.querySelectorAll(\".media-panel[data-metric='examples'] .media-box\").length === 2"
    )
    page.wait_for_function(
        "() => document.querySelectorAll(\".media-panel[data-metric='examples'] canvas.media-mask[data-drawn='true']\").length === 2"
    )
    # The Files tab's preview of the table's run file (plain cells only) shows the whole table.
    page.goto("/alice/media/runs/by-wandb/files")
    page.get_by_role("button", name=re.compile(r"^tab_0_.*\.table\.json$")).click()
    _thumbnails_load(page, page.locator("section[aria-label^='Preview of'] .media-table"))
