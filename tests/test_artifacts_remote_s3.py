"""`branchline server --artifacts s3://…` against moto's S3 server on loopback: a remote run's
artifact blobs and run files land in the bucket, and download with identical bytes."""

from __future__ import annotations

import hashlib
import os
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


def s3_server_process(store_url: str, workdir: Path, artifacts: str, endpoint: str) -> ServerProcess:
    """A `ServerProcess` whose blobs go to `artifacts` (an s3:// URL), with S3 settings in its environment."""
    return ServerProcess(
        store_url,
        workdir,
        extra_args=["--artifacts", artifacts],
        extra_env={**_CREDENTIALS, "BRANCHLINE_S3_ENDPOINT_URL": endpoint},
    )


@pytest.fixture
def s3_server(s3: Any, s3_endpoint: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, str, Any, str]]:  # noqa: F811
    bucket = _bucket(s3, "server-blobs")
    workdir = tmp_path / "server"
    workdir.mkdir()
    store_url = f"sqlite:///{workdir / 'store.db'}"
    with open_store(store_url) as store:
        store.create_user("alice")
        key = store.create_api_key("alice")[1]
    proc = s3_server_process(store_url, workdir, f"s3://{bucket}/srv", s3_endpoint)
    proc.start()
    try:
        yield proc, key, s3, bucket
    finally:
        proc.stop()


def test_server_keeps_artifacts_and_run_files_on_s3(
    s3_server: tuple[ServerProcess, str, Any, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
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
