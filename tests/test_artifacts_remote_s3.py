"""`branchline server --artifacts s3://…` against moto's S3 server on loopback: a remote run's
artifact blobs and run files land in the bucket, and download with identical bytes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import branchline
from branchline.store import open_store
from tests.backends import ServerProcess
from tests.conftest import QUIET
from tests.test_artifacts_s3 import _CREDENTIALS, _bucket, _keys, s3, s3_endpoint  # noqa: F401 - fixtures


class S3Server(ServerProcess):
    """A `ServerProcess` whose blobs go to `artifacts` (an s3:// URL), with S3 settings in its environment."""

    def __init__(self, store_url: str, workdir: Path, artifacts: str, endpoint: str) -> None:
        super().__init__(store_url, workdir)
        self.artifacts = artifacts
        self.endpoint = endpoint

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
        env.update(_CREDENTIALS, BRANCHLINE_S3_ENDPOINT_URL=self.endpoint)
        env["BRANCHLINE_CONFIG_DIR"] = str(self.workdir / ".server-config")
        command = [sys.executable, "-m", "branchline", "server", "--store", self.store_url, "--port", str(self.port)]
        command += ["--artifacts", self.artifacts]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(command, cwd=self.workdir, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.base_url + "/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("the server did not start:\n" + self.log.read_text())


@pytest.fixture
def s3_server(s3: Any, s3_endpoint: str, tmp_path: Path) -> Iterator[tuple[S3Server, str, Any, str]]:  # noqa: F811
    bucket = _bucket(s3, "server-blobs")
    workdir = tmp_path / "server"
    workdir.mkdir()
    store_url = f"sqlite:///{workdir / 'store.db'}"
    with open_store(store_url) as store:
        store.create_user("alice")
        key = store.create_api_key("alice")[1]
    proc = S3Server(store_url, workdir, f"s3://{bucket}/srv", s3_endpoint)
    proc.start()
    try:
        yield proc, key, s3, bucket
    finally:
        proc.stop()


def test_server_keeps_artifacts_and_run_files_on_s3(
    s3_server: tuple[S3Server, str, Any, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc, key, client, bucket = s3_server
    monkeypatch.setenv("BRANCHLINE_BASE_URL", proc.base_url)
    monkeypatch.setenv("BRANCHLINE_API_KEY", key)
    monkeypatch.delenv("BRANCHLINE_ARTIFACT_STORAGE", raising=False)
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    files = {f"f{i}.bin": os.urandom(30_000) for i in range(3)}
    for name, content in files.items():
        (data / name).write_bytes(content)
    (tmp_path / "notes.txt").write_text("saved with the run\n")

    run = branchline.init(project="s3", settings=dict(QUIET))
    art = run.log_artifact(str(data), name="ds", type="dataset")
    run.save("notes.txt", policy="now")
    run.finish()

    keys = set(_keys(client, bucket, "srv/"))
    for content in files.values():
        digest = hashlib.sha256(content).hexdigest()
        assert f"srv/{digest[:2]}/{digest[2:]}" in keys
    notes = hashlib.sha256(b"saved with the run\n").hexdigest()
    assert f"srv/{notes[:2]}/{notes[2:]}" in keys
    assert not (proc.workdir / "blobs").exists()  # nothing on the server's disk

    api = branchline.Api()
    root = Path(api.artifact(f"alice/s3/ds:{art.version}").download(str(tmp_path / "out")))
    assert {p.name: p.read_bytes() for p in root.iterdir()} == files
    response = httpx.get(
        f"{proc.base_url}/api/v1/runs/alice/s3/{run.id}/files/notes.txt",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert response.status_code == 200 and response.content == b"saved with the run\n"
    api.close()
