"""Headless Chromium for the web app's tests: Debian's chromium, launched through Playwright.

Browsers cannot be downloaded here (`playwright install` fails), so Playwright drives the system's
chromium; the flags keep it from reaching the network or a GPU.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "SHOTS",
    "UI_INDEX",
    "browser_page",
    "chromium",
    "free_port",
    "get_json",
    "http_status",
    "require_browser_and_app",
    "seed_store",
    "shot",
    "ui_env",
    "ui_server",
]

REPO = Path(__file__).resolve().parents[1]
# The committed screenshots are refreshed on request only, so a test run leaves the checkout clean.
SHOTS = (
    REPO / "docs" / "screenshots"
    if os.environ.get("BRANCHLINE_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "branchline-screenshots"
)

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


def ui_env(root: Path) -> dict[str, str]:
    """The environment of a seeding script or a `branchline ui` process: none of ours leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    env["BRANCHLINE_CONFIG_DIR"] = str(root / ".config")
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def seed_store(root: Path, script: str, *args: str, timeout: float = 240) -> dict[str, Any]:
    """Run `script` (given `root` and `args` as argv) to fill the store under `root`; the JSON it
    printed on a line starting `IDS=` (an empty dict when it printed none)."""
    done = subprocess.run(
        [sys.executable, "-c", script, str(root), *args],
        cwd=root,
        env=ui_env(root),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    line = next((line for line in done.stdout.splitlines() if line.startswith("IDS=")), "IDS={}")
    return dict(json.loads(line[4:]))


@contextmanager
def ui_server(root: Path) -> Iterator[str]:
    """A `branchline ui --no-browser` process over the store under `root`; yields its base URL."""
    require_browser_and_app()
    port = free_port()
    cli = shutil.which("branchline", path=str(Path(sys.executable).parent)) or "branchline"
    server = subprocess.Popen(
        [cli, "ui", "--no-browser", "--port", str(port), "--dir", str(root)],
        cwd=root,
        env=ui_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if get_json(f"{base}/api/v1/health")["ok"]:
                break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            output = server.stdout.read() if server.stdout else ""
            pytest.fail(f"branchline ui did not start: {output}")
        time.sleep(0.1)
    try:
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@contextmanager
def browser_page(browser: Any, base: str, width: int = 1360, height: int = 860) -> Iterator[Any]:
    """A fresh page on `base`; on exit, fails if the page threw an uncaught error."""
    context = browser.new_context(viewport={"width": width, "height": height}, base_url=base, accept_downloads=True)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield tab
    finally:
        context.close()
    assert errors == [], errors


def shot(page: Any, name: str) -> None:
    """A screenshot for the docs (docs/screenshots/ with BRANCHLINE_UPDATE_SCREENSHOTS=1), once
    charts and fonts have settled."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(400)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
