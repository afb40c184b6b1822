"""`File.delete()` through the public Api: the file leaves the run and its content is removed."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

import branchline
from branchline.artifacts.blobstores import open_blob_store, resolve_blob_url
from branchline.artifacts.public import garbage_collect
from branchline.store.store import open_store
from tests.backends import Backend, SharedServer


def _server_listing(backend: Backend, run_path: str) -> set[str]:
    """The paths the web app's Files tab lists for a run."""
    answer = httpx.get(
        f"{backend.base_url}/api/v1/runs/{run_path}/files", headers={"Authorization": f"Bearer {backend.api_key}"}
    )
    answer.raise_for_status()
    return {row["path"] for row in answer.json()["files"]}


def test_a_deleted_file_is_gone_with_its_content(backend: Backend, tmp_path: Path, quiet: dict[str, Any]) -> None:
    (tmp_path / "notes.txt").write_text("delete me")
    (tmp_path / "keep.txt").write_text("keep me")
    run = branchline.init(project="files", settings=quiet)
    run.save(str(tmp_path / "notes.txt"), base_path=str(tmp_path), policy="now")
    run.save(str(tmp_path / "keep.txt"), base_path=str(tmp_path), policy="now")
    run.finish()

    api_run = backend.reader.run(f"{run.entity}/files/{run.id}")
    inc = api_run._view.incarnation_id
    files = {f.name: f for f in api_run.files()}
    assert {"notes.txt", "keep.txt"} <= set(files)
    doomed = files["notes.txt"]
    if backend.remote:
        assert {"notes.txt", "keep.txt"} <= _server_listing(backend, f"{run.entity}/files/{run.id}")

    doomed.delete()

    again = backend.api().run(f"{run.entity}/files/{run.id}")
    names = {f.name for f in again.files()}
    assert "notes.txt" not in names and "keep.txt" in names
    with pytest.raises(branchline.UsageError, match=r"has no file 'notes\.txt'"):
        again.file("notes.txt")
    with pytest.raises(branchline.Error, match=r"notes\.txt"):  # its content cannot be read any more
        doomed.download(str(tmp_path / "gone"))
    assert again.file("keep.txt").download(str(tmp_path / "out")).read_text() == "keep me"
    if backend.remote:
        assert "notes.txt" not in _server_listing(backend, f"{run.entity}/files/{run.id}")
        blobs = open_blob_store(resolve_blob_url(backend.store_url))
        assert blobs.missing([doomed.sha256]) == {doomed.sha256}  # no other file held that content
    else:
        assert not (Path(backend.store_url[len("sqlite:///") :]).parent / "files" / inc / "notes.txt").exists()

    with pytest.raises(branchline.UsageError, match=r"Cannot delete 'notes\.txt'.*no such file"):
        doomed.delete()  # a second time: it is not there any more


def test_content_another_file_shares_is_kept(backend: Backend, tmp_path: Path, quiet: dict[str, Any]) -> None:
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text("same bytes")
    run = branchline.init(project="files", settings=quiet)
    for name in ("a.txt", "b.txt"):
        run.save(str(tmp_path / name), base_path=str(tmp_path), policy="now")
    run.finish()

    api_run = backend.reader.run(f"{run.entity}/files/{run.id}")
    api_run.file("a.txt").delete()
    left = backend.api().run(f"{run.entity}/files/{run.id}")
    assert "a.txt" not in {f.name for f in left.files()}
    assert left.file("b.txt").download(str(tmp_path / "out")).read_text() == "same bytes"


@pytest.mark.backends("server")
def test_the_delete_route_needs_write_access_and_names_a_missing_path(
    backend: Backend, shared_server: SharedServer, tmp_path: Path, quiet: dict[str, Any]
) -> None:
    (tmp_path / "notes.txt").write_text("private")
    run = branchline.init(project="files", settings=quiet)
    run.save(str(tmp_path / "notes.txt"), base_path=str(tmp_path), policy="now")
    run.finish()
    inc = backend.reader.run(f"{run.entity}/files/{run.id}")._view.incarnation_id
    url = f"{backend.base_url}/api/v1/artifacts/files/{inc}"

    stranger = f"stranger{uuid.uuid4().hex[:8]}"
    shared_server.store.create_user(stranger)
    stranger_key = shared_server.store.create_api_key(stranger)[1]
    refused = httpx.delete(f"{url}/notes.txt", headers={"Authorization": f"Bearer {stranger_key}"})
    assert refused.status_code in (403, 404), refused.text  # not their project: nothing removed
    assert "notes.txt" in _server_listing(backend, f"{run.entity}/files/{run.id}")

    missing = httpx.delete(f"{url}/nope/missing.bin", headers={"Authorization": f"Bearer {backend.api_key}"})
    error = missing.json()["error"]
    assert missing.status_code == 404 and "nope/missing.bin" in error["message"] and error["field"] == "path", error
    removed = httpx.delete(f"{url}/notes.txt", headers={"Authorization": f"Bearer {backend.api_key}"})
    assert removed.status_code == 200, removed.text
    assert "notes.txt" not in _server_listing(backend, f"{run.entity}/files/{run.id}")
    assert "Traceback" not in shared_server.new_log()


@pytest.mark.backends("server")
def test_garbage_collection_keeps_a_run_files_content(backend: Backend, tmp_path: Path, quiet: dict[str, Any]) -> None:
    (tmp_path / "weights.bin").write_bytes(b"\x01" * 100)
    run = branchline.init(project="files", settings=quiet)
    run.save(str(tmp_path / "weights.bin"), base_path=str(tmp_path), policy="now")
    run.finish()
    saved = backend.reader.run(f"{run.entity}/files/{run.id}").file("weights.bin")
    blob_url = resolve_blob_url(backend.store_url)
    with open_store(backend.store_url) as store:
        assert saved.sha256 not in garbage_collect(store, blob_url=blob_url, min_age=0)
    assert saved.download(str(tmp_path / "out")).read_bytes() == b"\x01" * 100
