"""Run files through the public Api: `run.file(name).download()` and `run.upload_file()`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import branchline
from tests.backends import Backend


def test_download_and_upload_run_files(backend: Backend, tmp_path: Path, quiet: dict[str, Any]) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    run = branchline.init(project="files", settings=quiet)
    run.save(str(notes), base_path=str(tmp_path), policy="now")
    run.finish()

    api_run = backend.run(run.entity, "files", run.id)
    saved = api_run.file("notes.txt")
    assert (saved.name, saved.size) == ("notes.txt", 5)
    target = saved.download(str(tmp_path / "out"))
    assert target == tmp_path / "out" / "notes.txt" and target.read_text() == "hello"
    with pytest.raises(branchline.UsageError, match="exists"):
        saved.download(str(tmp_path / "out"))
    notes.write_text("changed")
    assert saved.download(str(tmp_path / "out"), replace=True).read_text() == "hello"  # the stored content

    extra = tmp_path / "sub" / "weights.bin"
    extra.parent.mkdir()
    extra.write_bytes(b"\x00\x01\x02")
    uploaded = api_run.upload_file(str(extra), root=str(tmp_path))
    assert uploaded.name == "sub/weights.bin" and uploaded.size == 3
    again = backend.run(run.entity, "files", run.id)
    assert {"notes.txt", "sub/weights.bin"} <= {f["path"] for f in again.files()}
    assert again.file("sub/weights.bin").download(str(tmp_path / "o2")).read_bytes() == b"\x00\x01\x02"
    with pytest.raises(branchline.UsageError, match="has no file 'missing'"):
        again.file("missing")
