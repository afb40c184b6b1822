"""Run files against a real `branchline server` process: `run.save()` with each policy uploads the
content (stored by sha256 on the server), the Files tab route serves identical bytes, and a server
that is down while a file is saved gets it once it is back, without training noticing."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest

import branchline
from branchline.sdk.files import run_files
from branchline.sdk.hooks import registry
from tests.backends import ServerProcess
from tests.test_artifacts_remote import remote_env, start_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    proc, key = start_server(tmp_path)
    try:
        yield proc, key
    finally:
        proc.stop()


def _files(proc: ServerProcess, key: str, project: str, run_id: str) -> dict[str, dict[str, Any]]:
    response = httpx.get(
        f"{proc.base_url}/api/v1/runs/alice/{project}/{run_id}/files",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    response.raise_for_status()
    return {row["path"]: row for row in response.json()["files"]}


def _content(proc: ServerProcess, key: str, project: str, run_id: str, path: str) -> bytes:
    response = httpx.get(
        f"{proc.base_url}/api/v1/runs/alice/{project}/{run_id}/files/{path}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    response.raise_for_status()
    return response.content


def _wait_for(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_saved_files_reach_the_server_with_each_policy(
    server: tuple[ServerProcess, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quiet: dict[str, Any]
) -> None:
    proc, key = server
    for name, value in remote_env(proc, key).items():
        monkeypatch.setenv(name, value)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    now = os.urandom(300_000)
    (work / "now.bin").write_bytes(now)
    (work / "live.txt").write_text("first\n")
    (work / "sub").mkdir()
    (work / "sub" / "end.json").write_text('{"draft": true}')

    run = branchline.init(project="files", settings=quiet)
    run.save("now.bin", policy="now")
    run.save("live.txt", policy="live")
    run.save("sub/end.json", policy="end")
    (work / "live.txt").write_text("first\nsecond\n")  # changed after the call
    (work / "sub" / "end.json").write_text('{"final": true}')  # "end" stores the last state
    _wait_for(lambda: _files(proc, key, "files", run.id).get("now.bin", {}).get("available"))
    assert _content(proc, key, "files", run.id, "now.bin") == now
    run.finish()

    rows = _files(proc, key, "files", run.id)
    assert {"now.bin", "live.txt", "sub/end.json"} <= set(rows)
    assert all(rows[p]["available"] for p in ("now.bin", "live.txt", "sub/end.json"))
    assert _content(proc, key, "files", run.id, "live.txt") == b"first\nsecond\n"
    assert _content(proc, key, "files", run.id, "sub/end.json") == b'{"final": true}'
    assert rows["now.bin"]["size"] == len(now)

    # The blob API lists and serves the same content by incarnation.
    auth = {"Authorization": f"Bearer {key}"}
    listed = msgpack.unpackb(
        httpx.get(f"{proc.base_url}/api/v1/artifacts/files/{run.incarnation_id}", headers=auth).content
    )
    assert {r["path"] for r in listed if r["available"]} >= {"now.bin", "live.txt", "sub/end.json"}
    got = httpx.get(f"{proc.base_url}/api/v1/artifacts/files/{run.incarnation_id}/now.bin", headers=auth)
    assert got.status_code == 200 and got.content == now
    stranger = httpx.get(f"{proc.base_url}/api/v1/artifacts/files/{run.incarnation_id}/now.bin")
    assert stranger.status_code == 401


def test_a_file_saved_while_the_server_is_down_arrives_later(
    server: tuple[ServerProcess, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quiet: dict[str, Any]
) -> None:
    proc, key = server
    for name, value in remote_env(proc, key).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    payload = os.urandom(100_000)
    (tmp_path / "model.bin").write_bytes(payload)

    errors_before = registry.writer_errors
    run = branchline.init(project="outage", settings=quiet)
    proc.kill()
    started = time.monotonic()
    run.save("model.bin", policy="now")
    run.log({"loss": 1.0})
    assert time.monotonic() - started < 2.0  # save() and log() do not wait for the network
    uploader = run_files(run._ctx)._uploader
    assert uploader is not None
    _wait_for(lambda: uploader.failures >= 1, timeout=40)
    proc.start()
    run.finish()
    # The writer reports the outage it rode out; that report is expected here.
    registry.writer_errors = errors_before

    assert _files(proc, key, "outage", run.id)["model.bin"]["available"]
    assert _content(proc, key, "outage", run.id, "model.bin") == payload


def test_files_of_an_offline_run_are_sent_by_sync(
    server: tuple[ServerProcess, str], tmp_path: Path, quiet: dict[str, Any]
) -> None:
    import subprocess
    import sys

    proc, key = server
    work = tmp_path / "work"
    work.mkdir()
    payload = os.urandom(50_000)
    (work / "weights.bin").write_bytes(payload)
    script = (
        "import branchline\n"
        "run = branchline.init(project='offline-files', mode='offline', settings={'quiet': True, 'x_disable_stats': True, 'console': 'off'})\n"
        "run.save('weights.bin', policy='now')\n"
        "run.log({'loss': 1.0})\n"
        "run.finish()\n"
        "print(run.id)\n"
    )
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    made = subprocess.run([sys.executable, "-c", script], cwd=work, capture_output=True, text=True, env=clean_env)
    assert made.returncode == 0, made.stderr
    run_id = made.stdout.split()[-1]
    synced = subprocess.run(
        [sys.executable, "-m", "branchline", "sync", "-e", "alice"],  # logged offline as the OS user
        cwd=work,
        capture_output=True,
        text=True,
        env={**clean_env, **remote_env(proc, key)},
    )
    assert synced.returncode == 0, synced.stderr
    assert _files(proc, key, "offline-files", run_id)["weights.bin"]["available"]
    assert _content(proc, key, "offline-files", run_id, "weights.bin") == payload
