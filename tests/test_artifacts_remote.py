"""Artifacts against a real `branchline server` process: the SDK asks which blobs the server lacks,
sends only those, and commits; versions, dedup, lineage both ways, verified downloads, and a
SIGKILL mid-upload that leaves no version and whose rerun sends only the missing blobs."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest

import branchline
from branchline.artifacts import ArtifactIntegrityError
from branchline.store import open_store
from tests.backends import ServerProcess
from tests.conftest import QUIET


def start_server(tmp_path: Path) -> tuple[ServerProcess, str]:
    """A `branchline server` over a fresh SQLite store (blobs in `blobs/` beside it), user alice."""
    workdir = tmp_path / "server"
    workdir.mkdir(parents=True, exist_ok=True)
    store_url = f"sqlite:///{workdir / 'store.db'}"
    with open_store(store_url) as store:
        store.create_user("alice")
        key = store.create_api_key("alice")[1]
    proc = ServerProcess(store_url, workdir)
    proc.start()
    return proc, key


def remote_env(proc: ServerProcess, key: str) -> dict[str, str]:
    return {"BRANCHLINE_BASE_URL": proc.base_url, "BRANCHLINE_API_KEY": key}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    proc, key = start_server(tmp_path)
    try:
        yield proc, key
    finally:
        proc.stop()


def _stats(server: ServerProcess, key: str) -> dict[str, int]:
    response = httpx.get(
        server.base_url + "/api/v1/artifacts/blob-stats", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    response.raise_for_status()
    stats: dict[str, int] = msgpack.unpackb(response.content)
    return stats


def _blob_files(server: ServerProcess) -> list[Path]:
    return sorted((server.workdir / "blobs").glob("??/*"))


def _on_server(server: ServerProcess, root: Path) -> int:
    """How many of the files under `root` the server holds as blobs."""
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}
    return sum((server.workdir / "blobs" / d[:2] / d[2:]).is_file() for d in digests)


def _write(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def test_versions_dedup_lineage_and_download_over_http(
    server: tuple[ServerProcess, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quiet: dict[str, Any]
) -> None:
    proc, key = server
    for name, value in remote_env(proc, key).items():
        monkeypatch.setenv(name, value)
    data = tmp_path / "data"
    files = {f"part{i}.bin": os.urandom(50_000) for i in range(5)}
    files["nested/readme.txt"] = b"hello"
    _write(data, files)

    first = branchline.init(project="arts", settings=quiet)
    art = branchline.Artifact("corpus", "dataset", metadata={"rows": 6, "note": None})
    art.add_dir(str(data))
    first.log_artifact(art, aliases=["best"])
    assert art.version == "v0"
    first.finish()
    assert _stats(proc, key)["uploaded"] == 6
    assert _on_server(proc, data) == 6

    (data / "part0.bin").write_bytes(b"changed")  # one file of six changes
    second = branchline.init(project="arts", settings=quiet)
    v1 = second.log_artifact(str(data), name="corpus", type="dataset")
    assert v1.version == "v1"
    again = second.log_artifact(str(data), name="corpus", type="dataset")  # same content: same version
    assert again.version == "v1"
    second.finish()
    stats = _stats(proc, key)
    assert stats["uploaded"] == 7 and stats["already_present"] == 0  # only the changed blob was sent

    # A run in another project uses v0: lineage crosses projects.
    consumer = branchline.init(project="elsewhere", settings=quiet)
    used = consumer.use_artifact("alice/arts/corpus:best")
    assert used.version == "v0" and used.metadata == {"rows": 6, "note": None}
    root = Path(used.download(str(tmp_path / "v0")))
    for name, content in files.items():
        assert (root / name).read_bytes() == content
    used.verify(str(root))
    consumer.finish()

    api = branchline.Api()
    latest = api.artifact("alice/arts/corpus:latest")
    assert latest.version == "v1" and latest.logged_by().id == second.id
    assert [a.version for a in api.artifacts("dataset", "alice/arts/corpus")] == ["v1", "v0"]
    v0 = api.artifact("alice/arts/corpus:v0")
    assert [r.id for r in v0.used_by()] == [consumer.id]
    assert v0.logged_by().id == first.id
    assert [a.version for a in api.run(f"elsewhere/{consumer.id}").used_artifacts()] == ["v0"]
    assert [a.version for a in api.run(f"arts/{second.id}").logged_artifacts()] == ["v1"]
    fresh = Path(latest.download(str(tmp_path / "v1")))
    assert (fresh / "part0.bin").read_bytes() == b"changed"
    assert (fresh / "part1.bin").read_bytes() == files["part1.bin"]

    # A blob corrupted on the server is caught by the download and named.
    changed = next(p for p in _blob_files(proc) if p.parent.name + p.name == v0.manifest.entries["part1.bin"].digest)
    os.chmod(changed, 0o644)
    changed.write_bytes(b"rot")
    with pytest.raises(ArtifactIntegrityError, match="corrupt"):
        api.artifact("alice/arts/corpus:v0").download(str(tmp_path / "again"))
    api.close()


def test_other_users_cannot_read_or_write_a_private_project(server: tuple[ServerProcess, str]) -> None:
    proc, key = server
    digest = "0" * 64
    missing = httpx.post(proc.base_url + "/api/v1/artifacts/alice/p/blobs/missing", json={"digests": [digest]})
    assert missing.status_code == 401  # no key
    auth = {"Authorization": f"Bearer {key}"}
    bad = httpx.put(proc.base_url + f"/api/v1/artifacts/alice/p/blobs/{digest}", content=b"x", headers=auth)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "digest_mismatch"
    assert not _stats(proc, key)["uploaded"]
    foreign = httpx.get(proc.base_url + f"/api/v1/artifacts/bob/p/blobs/{digest}", headers=auth)
    assert foreign.status_code == 403
    commit = httpx.post(
        proc.base_url + "/api/v1/artifacts/alice/p/commit",
        json={"name": "x", "type": "t", "digest": "d", "entries": [{"path": "a", "digest": "1" * 64, "size": 1}]},
        headers=auth,
    )
    assert commit.status_code == 409 and commit.json()["error"]["code"] == "blobs_missing"


_CHILD = textwrap.dedent(
    """
    import sys, time
    import branchline
    from branchline.artifacts import http

    slow = sys.argv[1] == "slow"
    original = http.HttpArtifactBackend.upload_blob

    def upload_blob(self, digest, path, expected_stat):
        original(self, digest, path, expected_stat)
        print("uploaded", digest, flush=True)
        if slow:
            time.sleep(0.4)

    http.HttpArtifactBackend.upload_blob = upload_blob
    run = branchline.init(project="kill", settings=QUIET)
    art = branchline.Artifact("big", "dataset")
    art.add_dir("data")
    run.log_artifact(art)
    print("committed", art.version, flush=True)
    run.finish()
    """
)


def test_killed_upload_leaves_no_version_and_the_rerun_sends_only_missing_blobs(
    server: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    proc, key = server
    work = tmp_path / "client"
    _write(work / "data", {f"f{i:02d}.bin": os.urandom(20_000) for i in range(24)})
    script = work / "child.py"
    script.write_text(f"QUIET = {QUIET!r}\n" + _CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    env.update(remote_env(proc, key))
    env["BRANCHLINE_CONFIG_DIR"] = str(tmp_path / ".config")

    child = subprocess.Popen(
        [sys.executable, str(script), "slow"], cwd=work, env=env, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    seen = 0
    deadline = time.monotonic() + 60
    while seen < 6 and time.monotonic() < deadline:
        line = child.stdout.readline()
        assert line, "the child ended before uploading"
        seen += line.startswith("uploaded")
    child.send_signal(signal.SIGKILL)
    child.wait(10)

    api = branchline.Api({"base_url": proc.base_url}, api_key=key)
    assert api.artifacts(None, "alice/kill/big") == []  # blobs, but no version
    present = _on_server(proc, work / "data")
    assert 6 <= present < 24
    before = _stats(proc, key)

    done = subprocess.run(
        [sys.executable, str(script), "fast"], cwd=work, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "committed v0" in done.stdout
    assert done.stdout.count("uploaded") == 24 - present
    after = _stats(proc, key)
    assert after["uploaded"] - before["uploaded"] == 24 - present
    assert after["already_present"] == before["already_present"]
    versions = api.artifacts(None, "alice/kill/big")
    assert [v.version for v in versions] == ["v0"]
    root = Path(versions[0].download(str(tmp_path / "out")))
    assert sorted(p.name for p in root.iterdir()) == sorted(p.name for p in (work / "data").iterdir())
    api.close()
