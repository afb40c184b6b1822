"""Logging in to the web app, in real headless Chromium (Debian's) driven by Playwright, against a
real `branchline server --auth` process.

alice owns a private project with a run (a log file and an image among its files) and a public one.
Anonymous visitors see only the public project and a "Log in" link; a wrong key is refused on the
login page; the right key lists the private project, names alice in the top bar, and makes the
run's plain links (download, <img> preview) work through the session cookie; logging out (or
revoking the key) makes the visitor anonymous again. With auth off none of this shows.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from branchline.store import open_store
from tests.backends import ServerProcess
from tests.browser import require_browser_and_app
from tests.store_factory import add_run

pytestmark = pytest.mark.browser

LOG_TEXT = "epoch 0 loss=0.5\n"


def _png(width: int = 3, height: int = 2) -> bytes:
    """A small, valid RGB PNG (so the browser really decodes the preview)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\x1f\x62\xd8" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A store where alice (with a key) owns a private and a public project, served with auth on."""
    require_browser_and_app()
    root = tmp_path_factory.mktemp("login-world")
    url = f"sqlite:///{root / 'store.db'}"
    image = _png()
    with open_store(url) as store:
        store.create_user("alice")
        key = store.create_api_key("alice")[1]
        view = add_run(
            store,
            entity="alice",
            project="secret-proj",
            run_id="run-1",
            name="private-run",
            history=[(s, {"loss": 1.0 / (s + 1)}) for s in range(10)],
            console=["hello from the private run"],
            files=[("output.log", len(LOG_TEXT)), ("chart.png", len(image))],
        )
        add_run(store, entity="alice", project="open-proj", run_id="run-2", name="public-run")
        store.set_project_public("alice", "open-proj", True)
    # Run files live beside the store (`files/<incarnation>/<path>`), as the server expects.
    files = root / "files" / view.incarnation_id
    files.mkdir(parents=True)
    (files / "output.log").write_text(LOG_TEXT)
    (files / "chart.png").write_bytes(image)
    server = ServerProcess(url, root, extra_args=["--auth"])
    server.start()
    try:
        yield {"base": server.base_url, "url": url, "key": key}
    finally:
        server.stop()


def _page(browser: Any, base: str) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=base, accept_downloads=True)
    context.set_default_timeout(15_000)
    return context.new_page()


@pytest.fixture
def page(browser: Any, site: dict[str, Any]) -> Iterator[Any]:
    tab = _page(browser, site["base"])
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    tab.context.close()
    assert errors == [], errors


def _query(page: Any) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(page.url).query))


def _session_cookie(page: Any) -> dict[str, Any] | None:
    return next((c for c in page.context.cookies() if c["name"] == "branchline_session"), None)


def _anonymous_home(page: Any) -> None:
    """The home page as an anonymous visitor sees it: the public project only, and a Log in link."""
    page.get_by_role("link", name="open-proj").wait_for()
    assert page.get_by_role("link", name="secret-proj").count() == 0
    page.get_by_role("banner").get_by_role("link", name="Log in").wait_for()
    assert page.get_by_test_id("viewer").count() == 0
    assert page.get_by_role("button", name="Log out").count() == 0


def test_log_in_use_the_session_and_log_out(page: Any, site: dict[str, Any]) -> None:
    page.goto("/")
    _anonymous_home(page)

    # A private page sends the anonymous visitor to the login page, remembering where they were.
    files_url = "/alice/secret-proj/runs/run-1/files"
    page.goto(files_url)
    page.wait_for_url(re.compile(r"/login\?"))
    assert _query(page) == {"next": files_url, "why": "needed"}
    page.get_by_role("heading", name="Log in").wait_for()
    page.get_by_role("status").filter(has_text="needs you to log in").wait_for()
    assert "branchline keys create <user>" in page.get_by_text("create one on the server").inner_text()

    key_field = page.get_by_label("API key")
    assert key_field.get_attribute("type") == "password"
    assert key_field.evaluate("el => el === document.activeElement")  # focused, ready to paste into

    # A wrong key is refused with a clear error, and no session is made.
    key_field.fill("bl_" + "0" * 40)
    page.get_by_role("button", name="Log in").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "not accepted" in alert.inner_text()
    assert key_field.get_attribute("aria-invalid") == "true"
    assert "/login" in page.url and _session_cookie(page) is None

    # The right key, typed and submitted from the keyboard, goes back to the run's files.
    key_field.fill("")
    key_field.press_sequentially(site["key"])
    key_field.press("Enter")
    page.wait_for_url(re.compile(re.escape(files_url) + "$"))
    cookie = _session_cookie(page)
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert page.get_by_test_id("viewer").inner_text().strip().endswith("alice")
    assert page.evaluate("document.cookie") == ""  # HttpOnly: scripts cannot read the key

    # Plain links carry the cookie: the download and the <img> preview work.
    tree = page.get_by_role("tree", name="Files of this run")
    tree.locator("li[data-path='output.log']").wait_for()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download output.log").click()
    assert Path(download.value.path()).read_text() == LOG_TEXT
    tree.get_by_role("button", name="chart.png").click()
    image = page.locator("img.file-image")
    image.wait_for()
    page.wait_for_function("document.querySelector('img.file-image').complete")
    assert image.evaluate("img => img.naturalWidth") == 3

    # The logs tab reads through the cookie too.
    page.get_by_role("link", name="Logs").click()
    page.get_by_role("log").get_by_text("hello from the private run").wait_for()

    # Home now lists the private project.
    page.get_by_role("link", name="branchline home").click()
    page.get_by_role("link", name="secret-proj").wait_for()
    assert page.get_by_role("link", name="open-proj").count() == 1
    assert page.get_by_role("banner").get_by_role("link", name="Log in").count() == 0

    # Log out: anonymous again, and the file link no longer works.
    # The page is already at "/": wait for the reload itself, not for a URL it already has.
    with page.expect_navigation(url=re.compile(r"/$")):
        page.get_by_role("button", name="Log out").click()
    _anonymous_home(page)
    assert _session_cookie(page) is None
    assert page.request.get("/api/v1/runs/alice/secret-proj/run-1/files/output.log").status == 401


def test_the_log_in_link_comes_back_to_the_page(page: Any, site: dict[str, Any]) -> None:
    page.goto("/alice/open-proj/table")
    page.get_by_role("banner").get_by_role("link", name="Log in").click()
    page.wait_for_url(re.compile(r"/login\?"))
    assert _query(page) == {"next": "/alice/open-proj/table"}
    assert page.get_by_role("status").filter(has_text="log in").count() == 0  # no reason: the user chose to
    page.get_by_label("API key").fill(site["key"])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/alice/open-proj/table$"))
    page.get_by_test_id("viewer").wait_for()


def test_a_revoked_key_ends_the_session(browser: Any, site: dict[str, Any]) -> None:
    with open_store(site["url"]) as store:
        store.create_user("bob")
        bob_key = store.create_api_key("bob")[1]
    page = _page(browser, site["base"])
    try:
        page.goto("/login")
        page.get_by_label("API key").fill(bob_key)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(re.compile(r"/$"))
        page.get_by_test_id("viewer").filter(has_text="bob").wait_for()
        page.get_by_role("link", name="open-proj").wait_for()
        # A new tab of the same browser (same cookie): a request of the old tab still in flight after
        # the revocation would otherwise be the one told the session ended (its answer drops the cookie).
        context = page.context
        page.close()
        with open_store(site["url"]) as store:
            assert store.revoke_api_key(store.list_api_keys("bob")[0].id)
        page = context.new_page()
        page.goto("/alice/open-proj")
        page.wait_for_url(re.compile(r"/login\?"))
        assert _query(page) == {"next": "/alice/open-proj", "why": "expired"}
        page.get_by_role("status").filter(has_text="session has ended").wait_for()
        assert _session_cookie(page) is None  # the server dropped the stale cookie
        page.get_by_role("link", name="Continue without logging in").click()
        page.get_by_role("link", name="open-proj").wait_for()
        page.get_by_role("banner").get_by_role("link", name="Log in").wait_for()
    finally:
        page.context.close()


def test_no_login_controls_without_auth(browser: Any, site: dict[str, Any], tmp_path: Path) -> None:
    local = ServerProcess(site["url"], tmp_path, extra_args=["--no-auth"])
    local.start()
    page = _page(browser, local.base_url)
    try:
        page.goto("/")
        page.get_by_role("link", name="secret-proj").wait_for()  # the local user sees everything
        # The viewer has answered (auth off) before we look for the controls that must not be there.
        assert httpx.get(local.base_url + "/api/v1/viewer").json()["auth_required"] is False
        page.wait_for_load_state("networkidle")
        banner = page.get_by_role("banner")
        assert banner.get_by_role("link", name="Log in").count() == 0
        assert banner.get_by_role("button", name="Log out").count() == 0
        page.goto("/login")
        page.get_by_role("heading", name="No login here").wait_for()
        assert page.get_by_label("API key").count() == 0
    finally:
        page.context.close()
        local.stop()
