"""Run identity, globals, reinit, exit codes and states, resume (reference §1, §5).

Tests taking `backend` run embedded and against a real server (tests/backends.py), reading back
through `Api`; the exit-code and crash tests point their subprocess at the same backend.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

import branchline
from tests.backends import Backend, history
from tests.conftest import run_python


def test_identity_and_properties(backend: Backend, quiet: dict[str, Any]) -> None:
    run = branchline.init("proj", notes="n", tags=["a", "b"], group="g", job_type="train", settings=quiet)
    assert re.fullmatch(r"[a-z0-9]{8}", run.id)
    assert re.fullmatch(r"[a-z]+-[a-z]+-1", run.name)
    assert run.project == "proj" and run.entity == backend.entity
    assert run.path == f"{run.entity}/proj/{run.id}"
    assert run.notes == "n" and run.tags == ("a", "b") and run.group == "g" and run.job_type == "train"
    assert run.url == (f"{backend.base_url}/{run.entity}/proj/runs/{run.id}" if backend.remote else None)
    assert run.resumed is False and run.starting_step == 0 and run.step == 0
    assert Path(run.dir).is_dir() and run.start_time > 0
    run.name = "renamed"
    run.tags += ("c",)
    run.notes = "changed"
    run.finish()
    view = backend.run(run.entity, "proj", run.id)
    assert (view.name, view.tags, view.notes, view.group, view.job_type) == (
        "renamed",
        ["a", "b", "c"],
        "changed",
        "g",
        "train",
    )
    second = branchline.init("proj", settings=quiet)
    assert second.name.endswith("-2")
    second.finish()


def test_default_project_and_entity(backend: Backend, quiet: dict[str, Any]) -> None:
    run = branchline.init(settings=quiet, entity="team")
    assert run.project == "uncategorized" and run.entity == "team"
    run.finish()


@pytest.mark.parametrize(
    ("run_id", "message"),
    [
        ("", "cannot be empty"),
        ("   ", "only whitespace"),
        (" x", "whitespace"),
        ("a/b", "invalid characters"),
        ("a:b", "invalid characters"),
        ("x" * 200, "limit is 128"),
        (5, "must be a string"),
    ],
)
def test_invalid_ids(quiet: dict[str, Any], run_id: Any, message: str) -> None:
    with pytest.raises(branchline.UsageError, match=message):
        branchline.init(project="p", id=run_id, settings=quiet)


def test_invalid_project_and_tags(quiet: dict[str, Any]) -> None:
    with pytest.raises(branchline.UsageError, match="invalid characters"):
        branchline.init(project="a/b", settings=quiet)
    with pytest.raises(branchline.UsageError, match="1 to 64"):
        branchline.init(project="p", tags=["x" * 65], settings=quiet)


def test_id_unique_per_project(backend: Backend, quiet: dict[str, Any]) -> None:
    branchline.init(project="p", id="same", settings=quiet).finish()
    with pytest.raises(branchline.UsageError, match=r"already exists.*resume='allow'"):
        branchline.init(project="p", id="same", settings=quiet)
    branchline.init(project="other", id="same", settings=quiet).finish()  # other project is fine


def test_globals_and_context_manager(backend: Backend, quiet: dict[str, Any]) -> None:
    assert branchline.run is None
    with branchline.init(project="p", settings=quiet) as run:
        assert branchline.run is run and branchline.config is run.config and branchline.summary is run.summary
        branchline.log({"a": 1})
        branchline.config.update({"k": 1})
        branchline.define_metric("a", summary="max")
    assert branchline.run is None
    with pytest.raises(ValueError, match="boom"), branchline.init(project="p", settings=quiet) as failing:
        raise ValueError("boom")
    assert backend.run(failing.entity, "p", failing.id).exit_code == 1
    assert backend.run(failing.entity, "p", failing.id).state == "failed"
    assert backend.run(run.entity, "p", run.id).state == "finished"


def test_reinit_modes(quiet: dict[str, Any]) -> None:
    # Which run init() returns is decided in process: offline runs (no writer process) show it.
    quiet = {**quiet, "mode": "offline"}
    first = branchline.init(project="p", settings=quiet)
    assert branchline.init(project="p", settings=quiet) is first  # return_previous by default
    independent = branchline.init(project="p", reinit="create_new", settings=quiet)
    assert independent is not first and branchline.run is first
    replaced = branchline.init(project="p", reinit="finish_previous", settings=quiet)
    assert branchline.run is replaced and first._finished and independent._finished
    replaced.finish()
    with pytest.raises(branchline.UsageError, match="reinit"):
        branchline.init(project="p", reinit="sometimes", settings=quiet)


def test_disabled_mode_accepts_every_call(tmp_path: Path) -> None:
    run = branchline.init(project="p", mode="disabled")
    run.log({"a": 1})
    run.config.lr = 1
    run.summary["x"] = 2
    run.define_metric("a", summary="max")
    assert run.summary["x"] == 2 and run.disabled
    run.finish()
    assert not (tmp_path / "branchline").exists()


SCRIPT = """
import os, sys, branchline
run = branchline.init(project="exit", id="{rid}", settings={{"quiet": True, "x_disable_stats": True, "console": "off"}})
run.log({{"a": 1}})
{ending}
"""


@pytest.mark.parametrize(
    ("ending", "exit_code", "state", "rc"),
    [
        ("pass", 0, "finished", 0),
        ("run.finish(exit_code=5)", 5, "failed", 0),
        ("raise ValueError('x')", 1, "failed", 1),
        ("sys.exit(3)", 3, "failed", 3),
        ("sys.exit('message')", 1, "failed", 1),
        ("sys.exit(None)", 0, "finished", 0),
        ("raise KeyboardInterrupt", 255, "failed", 1),
        ("run.mark_preempting(); sys.exit(2)", 2, "preempted", 2),
        ("os._exit(0)", None, "crashed", 0),
    ],
)
def test_exit_codes_in_real_processes(
    backend: Backend, tmp_path: Path, ending: str, exit_code: int | None, state: str, rc: int
) -> None:
    result = run_python(SCRIPT.format(rid="r1", ending=ending), tmp_path, env=backend.env())
    assert result.returncode == rc or (ending == "raise KeyboardInterrupt" and result.returncode in (-2, 1, 130)), (
        result.stderr
    )
    deadline = time.time() + 20
    view = backend.run(backend.entity, "exit", "r1")
    # After a crash the writer process drains the journal on its own; give it time.
    while (view.state == "running" or view.last_step < 0) and time.time() < deadline:
        time.sleep(0.2)
        view = backend.run(backend.entity, "exit", "r1")
    assert view.state == state
    assert view.exit_code == exit_code
    assert history(view, "a") == {0: 1}


def test_crashed_run_becomes_running_when_it_logs_again(
    backend: Backend, tmp_path: Path, quiet: dict[str, Any]
) -> None:
    result = run_python(SCRIPT.format(rid="c1", ending="os._exit(1)"), tmp_path, env=backend.env())
    assert result.returncode == 1
    for _ in range(100):
        if backend.run(backend.entity, "exit", "c1").state == "crashed":
            break
        time.sleep(0.1)
    assert backend.run(backend.entity, "exit", "c1").state == "crashed"
    run = branchline.init(project="exit", id="c1", resume="allow", settings=quiet)
    assert backend.run(run.entity, "exit", "c1").state == "running"
    run.log({"a": 2})
    run.finish()
    stored = backend.run(run.entity, "exit", "c1")
    assert stored.state == "finished"
    assert history(stored, "a") == {0: 1, 1: 2}


def test_resume_modes(backend: Backend, quiet: dict[str, Any]) -> None:
    with pytest.raises(branchline.UsageError, match="resume='must' but no run 'r'"):
        branchline.init(project="p", id="r", resume="must", settings=quiet)
    run = branchline.init(
        project="p", id="r", resume="allow", config={"lr": 1, "keep": True}, tags=["t1"], notes="first", settings=quiet
    )
    assert not run.resumed
    run.define_metric("loss", summary="min")
    for i in range(3):
        run.log({"loss": 3.0 - i})
    run.finish()
    with pytest.raises(branchline.UsageError, match="resume='never' but run 'r' already exists"):
        branchline.init(project="p", id="r", resume="never", settings=quiet)
    resumed = branchline.init(project="p", id="r", resume="must", config={"lr": 2}, settings=quiet)
    assert resumed.resumed and resumed.starting_step == 3 and resumed.step == 3
    assert resumed.config.as_dict() == {"lr": 2, "keep": True}  # merged, new wins
    assert resumed.summary["loss"] == {"min": 1.0}  # summary kept
    assert resumed.tags == ("t1",) and resumed.notes == "first"  # kept when not passed
    resumed.log({"loss": 0.5})
    resumed.finish()
    again = branchline.init(project="p", id="r", resume=True, tags=["t2"], settings=quiet)
    assert again.tags == ("t2",)  # replaced when passed
    again.finish()
    view = backend.run(run.entity, "p", "r")
    assert history(view, "loss") == {0: 3.0, 1: 2.0, 2: 1.0, 3: 0.5}
    assert view.summary["loss"] == {"min": 0.5}  # aggregate state survived the resume
    assert view.state == "finished"


def test_resume_auto_uses_the_resume_file(backend: Backend, tmp_path: Path) -> None:
    crash = """
    import os, branchline
    run = branchline.init(project="auto", resume="auto", settings={"quiet": True, "x_disable_stats": True, "console": "off"})
    run.log({"a": 1})
    print(run.id)
    os._exit(1)
    """
    first = run_python(crash, tmp_path, env=backend.env())
    crashed_id = first.stdout.strip()
    clean = """
    import branchline
    run = branchline.init(project="auto", resume="auto", settings={"quiet": True, "x_disable_stats": True, "console": "off"})
    print(run.id, run.resumed, run.step)
    run.finish()
    """
    second = run_python(clean, tmp_path, env=backend.env()).stdout.split()
    assert second == [crashed_id, "True", "1"]
    third = run_python(clean, tmp_path, env=backend.env()).stdout.split()
    assert third[0] != crashed_id and third[1] == "False"  # clean finish removed the resume file


def test_conflicting_resume_arguments(quiet: dict[str, Any]) -> None:
    with pytest.raises(branchline.UsageError, match="mutually exclusive"):
        branchline.init(project="p", resume="allow", fork_from="x?_step=1", settings=quiet)
    with pytest.raises(branchline.UsageError, match="mutually exclusive"):
        branchline.init(project="p", resume_from="x?_step=1", fork_from="x?_step=1", settings=quiet)
    with pytest.raises(branchline.UsageError, match="not valid"):
        branchline.init(project="p", resume="sometimes", settings=quiet)


def test_wandb_env_names_are_honoured(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_PROJECT", "from-wandb-env")
    monkeypatch.setenv("WANDB_TAGS", "x,y")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("BRANCHLINE_DISABLE_STATS", "true")
    monkeypatch.setenv("WANDB_NOTES", "hello")
    run = branchline.init()
    assert (run.project, run.tags, run.notes) == ("from-wandb-env", ("x", "y"), "hello")
    run.finish()
    monkeypatch.setenv("BRANCHLINE_PROJECT", "ours-win")
    run = branchline.init()
    assert run.project == "ours-win"
    run.finish()
    run = branchline.init("explicit-wins")
    assert run.project == "explicit-wins"
    run.finish()


def test_a_caught_system_exit_does_not_fail_later_runs(backend: Backend, quiet: dict[str, Any]) -> None:
    run = branchline.init(project="caught", settings=quiet)
    import sys

    with pytest.raises(SystemExit):
        sys.exit(3)  # caught: the interpreter is not exiting
    run.finish()
    view = backend.run(run.entity, "caught", run.id)
    assert (view.state, view.exit_code) == ("finished", 0)


def _writer_children() -> set[int]:
    import psutil

    found = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "branchline.sdk.writer" in " ".join(child.cmdline()):
                found.add(child.pid)
        except psutil.Error:
            continue  # gone (or a zombie about to be reaped) while we looked
    return found


def test_writer_runs_below_training_and_leaves_when_init_fails(backend: Backend, quiet: dict[str, Any]) -> None:
    import os

    from branchline.sdk.writer import WRITER_NICENESS

    run = branchline.init(project="p", settings=quiet)
    writer = run._res.writer
    assert writer is not None
    # Training goes first on a busy machine: the writer is scheduled below the training process.
    deadline = time.monotonic() + 10
    while os.getpriority(os.PRIO_PROCESS, writer.proc.pid) == os.getpriority(os.PRIO_PROCESS, 0):
        assert time.monotonic() < deadline, "the writer never lowered its priority"
        time.sleep(0.02)
    assert os.getpriority(os.PRIO_PROCESS, writer.proc.pid) == min(
        19, os.getpriority(os.PRIO_PROCESS, 0) + WRITER_NICENESS
    )
    run.log({"x": 1.0})
    run.finish()
    assert history(backend.run(run.entity, "p", run.id), "x") == {0: 1.0}

    # The writer is started before the run exists; when init() then fails, it must not linger.
    before = _writer_children()
    with pytest.raises(branchline.UsageError, match="resume='must'"):
        branchline.init(project="p", id="missing", resume="must", settings=quiet)
    deadline = time.monotonic() + 10
    while _writer_children() - before:
        assert time.monotonic() < deadline, "a writer started by a failed init() is still alive"
        time.sleep(0.05)
