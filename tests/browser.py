"""Headless Chromium for the web app's tests: Debian's chromium, launched through Playwright.

Browsers cannot be downloaded here (`playwright install` fails), so Playwright drives the system's
chromium; the flags keep it from reaching the network or a GPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "UI_INDEX", "chromium", "require_browser_and_app"]

CHROMIUM = "/usr/bin/chromium"
UI_INDEX = Path(__file__).resolve().parents[1] / "src" / "branchline" / "server" / "ui_dist" / "index.html"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless browser, closed (with Playwright) on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def require_browser_and_app() -> None:
    """Skip without Debian's chromium (`.ci/run` installs it); fail when the web app is not built."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    if not UI_INDEX.exists():
        pytest.fail("The web app is not built: run scripts/build-frontend.sh")
