"""SIGKILL mid-upload: no partial version is visible, and the retry sends only the missing blobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from branchline.artifacts import public

from .conftest import store_at

_CHILD = textwrap.dedent(
    """
    import json, sys, time
    import branchline
    from branchline.artifacts.blobstores import LocalBlobStore

    mode, log = sys.argv[1], sys.argv[2]
    original = LocalBlobStore.put_file

    def put_file(self, digest, path, **kwargs):
        if mode == "slow":
            time.sleep(0.05)  # slow storage, so the parent can kill us mid-upload
        original(self, digest, path, **kwargs)
        with open(log, "a") as fh:
            fh.write(digest + "\\n")

    LocalBlobStore.put_file = put_file
    run = branchline.init(project="p", dir=".", settings={"quiet": True, "x_disable_stats": True, "console": "off"})
    art = branchline.Artifact("big", "dataset")
    art.add_dir("data")
    run.log_artifact(art)
    print(json.dumps({"version": art.version, "entity": run.entity}), flush=True)
    run.finish()
    """
)


def _blobs(root: Path) -> dict[str, int]:
    """digest → inode of every committed blob file."""
    found = {}
    for path in (root / "branchline" / "blobs").glob("??/*"):
        try:
            found[path.parent.name + path.name] = path.stat().st_ino
        except FileNotFoundError:  # listed mid-rename
            continue
    return found


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    env["BRANCHLINE_CONFIG_DIR"] = str(tmp_path / ".config")
    env["BRANCHLINE_CACHE_DIR"] = str(tmp_path / ".cache")
    return env


def test_killed_upload_leaves_no_version_and_retry_sends_only_missing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(200):
        (data / f"part-{i:03d}.bin").write_bytes(os.urandom(4096))
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"

    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, "slow", str(first_log)],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    try:
        while len(_blobs(tmp_path)) < 40:
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline, "the upload never started"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    before = _blobs(tmp_path)
    assert 40 <= len(before) < 200
    with store_at(tmp_path) as store:
        entity = store.list_projects()[0]["entity"]
        assert public.artifact_versions(store, None, f"{entity}/p/big") == []
        assert not public.artifact_exists(store, f"{entity}/p/big:latest")

    done = subprocess.run(
        [sys.executable, "-c", _CHILD, "fast", str(second_log)],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert '"version": "v0"' in done.stdout

    after = _blobs(tmp_path)
    assert len(after) == 200
    resent = second_log.read_text().split()
    assert sorted(resent) == sorted(set(after) - set(before))  # only what was missing
    assert all(after[d] == ino for d, ino in before.items())  # earlier blobs untouched
    assert not list((tmp_path / "branchline" / "blobs" / "tmp").iterdir())  # the killed temp files swept
    with store_at(tmp_path) as store:
        versions = public.artifact_versions(store, "dataset", f"{entity}/p/big")
        assert [v.version for v in versions] == ["v0"]
        assert versions[0].file_count == 200
        versions[0].verify()
