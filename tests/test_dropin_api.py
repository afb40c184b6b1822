"""The public Api's run summary and files behave like wandb's objects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import branchline
from branchline.api.run_parts import File

QUIET = {"quiet": True, "x_disable_stats": True, "console": "off"}


def _api_run(path: str) -> branchline.api.Run:
    return branchline.Api(overrides={"root_dir": "."}).run(path)


def test_summary_edits_persist_through_summary_update_and_del() -> None:
    run = branchline.init(project="p", settings=QUIET)
    run.log({"acc": 0.5, "loss": 2.0})
    run.finish()

    api_run = _api_run(run.path)
    api_run.summary["best_acc"] = 0.9
    api_run.summary.update()
    assert _api_run(run.path).summary["best_acc"] == 0.9

    api_run.summary.update({"note": "tuned"})
    del api_run.summary["loss"]
    again = _api_run(run.path)
    assert again.summary["note"] == "tuned" and "loss" not in again.summary and again.summary["acc"] == 0.5
    assert again.summary._json_dict == dict(again.summary)
    json.dumps(again.summary._json_dict)


def test_summary_update_keeps_other_unsaved_edits_for_run_update() -> None:
    run = branchline.init(project="p", settings=QUIET)
    run.finish()
    api_run = _api_run(run.path)
    api_run.name = "renamed"
    api_run.summary.update({"k": 1})
    api_run.update()
    again = _api_run(run.path)
    assert again.name == "renamed" and again.summary["k"] == 1


def test_files_are_file_objects_and_the_metadata_file_answers_to_wandbs_name(tmp_path: Path) -> None:
    run = branchline.init(project="p", settings={"quiet": True, "x_disable_stats": True})
    Path("weights.bin").write_bytes(b"\x00" * 10)
    run.save("weights.bin", policy="now")
    run.finish()

    api_run = _api_run(run.path)
    files = api_run.files()
    assert files and all(isinstance(f, File) for f in files)
    weights = next(f for f in files if f.name == "weights.bin")
    assert weights.size == 10 and weights["path"] == "weights.bin"
    assert weights.url is not None and weights.url.endswith("weights.bin")
    assert weights.download(root=str(tmp_path / "out")).read_bytes() == b"\x00" * 10
    assert weights.download(root=str(tmp_path / "out"), exist_ok=True).exists()

    meta = api_run.file("wandb-metadata.json")
    assert meta.name == "wandb-metadata.json"
    written = meta.download(root=str(tmp_path / "meta"))
    assert written.name == "wandb-metadata.json" and json.loads(written.read_text())
    assert [f.name for f in api_run.files(names=["weights.bin"])] == ["weights.bin"]


def test_deleting_a_file_removes_it_from_the_run() -> None:
    run = branchline.init(project="p", settings={"quiet": True, "x_disable_stats": True})
    Path("a.txt").write_text("a")
    run.save("a.txt", policy="now")
    run.finish()
    file = _api_run(run.path).file("a.txt")
    file.delete()
    assert "a.txt" not in {f.name for f in _api_run(run.path).files()}
    with pytest.raises(branchline.UsageError, match="no such file"):
        file.delete()
