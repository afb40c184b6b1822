"""A client that abandons a streamed upload halfway is a normal abort for a real server process:
one info line in its log, no traceback, and nothing of the partial upload kept."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from branchline.server import ServerSettings, create_app
from branchline.store.store import open_store
from tests.backends import ServerProcess
from tests.test_artifacts_remote import start_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    proc, key = start_server(tmp_path)
    try:
        yield proc, key
    finally:
        proc.stop()


def _abandon_put(proc: ServerProcess, key: str, target: str, declared: int, sent: bytes) -> None:
    """Send a PUT that promises `declared` bytes, send only `sent`, then close the socket."""
    head = (
        f"PUT {target} HTTP/1.1\r\nHost: 127.0.0.1:{proc.port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as conn:
        conn.sendall(head.encode() + sent)
        time.sleep(0.5)  # let the server start streaming the body into its temporary file


def _wait_until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_an_abandoned_upload_is_aborted_quietly(server: tuple[ServerProcess, str]) -> None:
    proc, key = server
    full = bytes(range(256)) * 8192  # 2 MiB: more than one chunk reaches the temporary file
    digest = hashlib.sha256(full).hexdigest()
    with open_store(proc.store_url) as store:  # a run to upload a file of
        from tests.test_store_contract import spec

        s = spec("upload")
        store.create_team("team")
        store.add_team_member("team", "alice")
        store.begin_run(s)
    _abandon_put(proc, key, f"/api/v1/artifacts/team/proj/blobs/{digest}", len(full), full[: 1 << 20])
    files_target = f"/api/v1/artifacts/files/{s.incarnation_id}/model.bin?sha256={digest}&register=true"
    _abandon_put(proc, key, files_target, len(full), full[: 1 << 20])

    blobs_dir = proc.workdir / "blobs"
    _wait_until(lambda: not [p for p in blobs_dir.rglob("*") if p.is_file()])  # temporary files removed
    time.sleep(0.5)  # the request's error handling runs right after that cleanup
    log = proc.log.read_text(errors="replace")
    assert "Traceback" not in log and "ClientDisconnect" not in log, log
    assert not list(blobs_dir.glob("??/*")), "a partial upload was stored as a blob"

    # The server is fine afterwards: the whole upload goes through, and nothing was registered before.
    headers = {"Authorization": f"Bearer {key}"}
    listed = httpx.get(f"{proc.base_url}/api/v1/runs/team/proj/upload/files", headers=headers, timeout=10)
    assert listed.status_code == 200 and listed.json()["files"] == [], listed.text
    stored = httpx.put(
        f"{proc.base_url}/api/v1/artifacts/team/proj/blobs/{digest}", content=full, headers=headers, timeout=30
    )
    assert stored.status_code == 201, stored.text


def test_a_disconnect_is_one_info_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """In process (the server's default log level hides info lines): the abort is logged once, at
    info, the answer nobody reads is a 400, and the temporary file is gone."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    open_store(url).close()  # a store with its schema and no users: auth is off
    app = create_app(ServerSettings(store_url=url, ui_dist=None))
    digest = "ab" * 32
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PUT",
        "scheme": "http",
        "path": f"/api/v1/artifacts/team/proj/blobs/{digest}",
        "raw_path": f"/api/v1/artifacts/team/proj/blobs/{digest}".encode(),
        "query_string": b"",
        "headers": [(b"content-length", b"4000000"), (b"host", b"testserver")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b"x" * 1_500_000, "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def abandon() -> None:
        async with app.router.lifespan_context(app):  # it opens the store
            with caplog.at_level(logging.INFO, logger="branchline.server"):
                await app(scope, receive, send)

    asyncio.run(abandon())
    lines = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert [(r.name, r.levelno) for r in lines] == [("branchline.server", logging.INFO)]
    assert not any(r.exc_info for r in caplog.records)
    assert sent[0]["status"] == 400
    assert not [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
