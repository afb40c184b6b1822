"""A plain new run on the embedded store starts without SQLAlchemy (sdk/fast_start.py).

The training process reads the project's run count with sqlite3 and leaves creating the run to the
writer process; everything that needs the stored run (an id, resume, fork, rewind, another schema
revision, journals to replay) still goes through the store.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import branchline
from branchline.schema_revision import SCHEMA_REVISION
from tests.conftest import run_python, store_at

HEAVY = ("sqlalchemy", "alembic", "numpy")


def test_a_new_run_never_imports_the_store_in_the_training_process(tmp_path: Path) -> None:
    code = f"""
        import json, sys, branchline
        heavy = lambda: [m for m in {HEAVY!r} if m in sys.modules]
        run = branchline.init("p", config={{"lr": 0.1, "odd": float("nan")}}, settings={{"quiet": True}})
        after_init = heavy()
        for i in range(50):
            run.log({{"loss": 1.0 / (i + 1)}})
        run.finish()
        print(json.dumps({{"id": run.id, "name": run.name, "config": dict(run.config),
                           "after_init": after_init, "after_finish": heavy()}}))
    """
    first = json.loads(run_python(code, tmp_path).stdout)
    # A fresh directory: the writer created the store; the next run reads the count from it.
    second = json.loads(run_python(code, tmp_path).stdout)
    for out in (first, second):
        assert out["after_init"] == [] and out["after_finish"] == []
    assert first["name"].endswith("-1") and second["name"].endswith("-2")
    # The config the run saw is the one stored (non-finite floats as strings, as the store keeps them).
    assert first["config"] == {"lr": 0.1, "odd": "NaN"}

    with store_at(tmp_path) as store:
        view = store.require_run(_user(), "p", first["id"])
        assert (view.name, view.state) == (first["name"], "finished")
        assert view.config == first["config"]
        steps, values = store.read_series(view.incarnation_id, "loss")
        assert len(steps) == 50 and values[-1] == pytest.approx(1 / 50)


def _user() -> str:
    import getpass

    return getpass.getuser()


def test_the_writer_creates_the_run_while_training_goes_on(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys, branchline
                run = branchline.init("live", settings={"quiet": True})
                print(run.id, run._res.store is None, flush=True)
                sys.stdin.readline()
                run.log({"x": 1.0})
                run.finish()
                """
            ),
        ],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "BRANCHLINE_CONFIG_DIR": str(tmp_path / ".config")},
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        run_id, no_store = child.stdout.readline().split()
        assert no_store == "True"  # the fast start was taken
        deadline = time.monotonic() + 60
        while True:
            view = _find_run(tmp_path, "live", run_id)
            if view is not None:
                break
            assert time.monotonic() < deadline, "the writer never created the run"
            time.sleep(0.1)
        assert view.state == "running"
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.wait(60) == 0
    finally:
        if child.poll() is None:
            child.kill()
    view = _find_run(tmp_path, "live", run_id)
    assert view is not None and view.state == "finished" and view.summary["x"] == 1.0


def _find_run(root: Path, project: str, run_id: str) -> Any:
    if not (root / "branchline" / "store.db").exists():
        return None
    with store_at(root) as store:
        return store.get_run(_user(), project, run_id)


def test_an_artifact_logged_at_once_opens_the_store_and_finds_the_run(tmp_path: Path, quiet: dict[str, Any]) -> None:
    (tmp_path / "weights.bin").write_bytes(b"w" * 1000)
    run = branchline.init("arts", settings=quiet)
    assert run._res.store is None and run._res.store_opener is not None
    # The writer may not have created the run yet: opening the store creates it (idempotently).
    logged = run.log_artifact(str(tmp_path / "weights.bin"), name="model", type="model").wait()
    assert run._res.store is not None
    run.log({"x": 2.0})
    run.finish()
    api = branchline.Api(overrides={"store_url": f"sqlite:///{tmp_path / 'branchline' / 'store.db'}"})
    stored = api.run(f"{run.entity}/arts/{run.id}")
    assert stored.summary["x"] == 2.0
    assert [a.version for a in stored.logged_artifacts()] == [logged.version] == ["v0"]
    assert len(api.runs(f"{run.entity}/arts")) == 1  # created once, by whichever process came first


def test_a_killed_writer_leaves_the_run_to_finish(tmp_path: Path, quiet: dict[str, Any]) -> None:
    run = branchline.init("orphan", settings=quiet)
    writer = run._res.writer
    assert writer is not None and run._res.store is None
    os.kill(writer.proc.pid, signal.SIGKILL)
    writer.proc.wait(10)
    for step in range(5):
        run.log({"x": float(step)})
    run.finish()
    with store_at(tmp_path) as store:
        view = store.require_run(run.entity, "orphan", run.id)
        assert view.state == "finished" and view.name == run.name
        assert list(store.read_series(view.incarnation_id, "x")[1]) == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_a_store_at_another_revision_is_refused_at_init(tmp_path: Path) -> None:
    with store_at(tmp_path):
        pass  # created at this revision
    db = tmp_path / "branchline" / "store.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    result = run_python(
        """
        import branchline
        try:
            branchline.init("p", settings={"quiet": True})
        except branchline.SchemaError as exc:
            print("refused:", exc)
        """,
        tmp_path,
    )
    assert "refused:" in result.stdout and "9999_from_the_future" in result.stdout, result.stdout + result.stderr
    assert SCHEMA_REVISION in result.stdout


def test_runs_that_read_the_store_take_the_full_path(tmp_path: Path, quiet: dict[str, Any]) -> None:
    first = branchline.init("p", id="given-id", settings=quiet)
    assert first._res.store is not None  # an id may name a stored run: checked in init
    first.log({"x": 1.0})
    first.finish()
    resumed = branchline.init("p", id="given-id", resume="allow", settings=quiet)
    assert resumed._res.store is not None and resumed.resumed and resumed.starting_step == 1
    resumed.finish()
    fork = branchline.init("p", fork_from="given-id?_step=0", settings=quiet)
    assert fork._res.store is not None and fork.forked_from is not None
    fork.finish()


KILLED_LOGGER = """
import branchline
run = branchline.init(project="fast-crash", settings={"quiet": True, "x_disable_stats": True, "console": "off"})
print(run.id, run.name, run._res.writer.proc.pid, flush=True)
i = 0
while True:
    run.log({"i": i})
    print(i, flush=True)
    i += 1
"""


def test_killed_at_random_moments_a_fast_started_run_loses_nothing(tmp_path: Path) -> None:
    """The crash-safety check of tests/test_durability.py, for runs the writer creates."""
    rng = random.Random(99)
    script = tmp_path / "logger.py"
    script.write_text(KILLED_LOGGER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    env["BRANCHLINE_CONFIG_DIR"] = str(tmp_path / ".config")
    confirmed: dict[str, tuple[str, int]] = {}
    for attempt in range(6):
        child = subprocess.Popen(
            [sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE, text=True, env=env
        )
        assert child.stdout is not None
        run_id, name, writer_pid = child.stdout.readline().split()
        # Early kills land before the writer has created the run: only the journal knows it then.
        time.sleep(rng.uniform(0.0, 0.6))
        child.send_signal(signal.SIGKILL)
        if attempt % 2 == 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(writer_pid), signal.SIGKILL)
        out, _ = child.communicate()
        printed = [int(line) for line in out.split() if line.strip().isdigit()]
        confirmed[run_id] = (name, printed[-1] if printed else -1)
    synced = subprocess.run(
        [sys.executable, "-m", "branchline", "sync"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert synced.returncode == 0, synced.stderr
    with store_at(tmp_path) as store:
        deadline = time.monotonic() + 30
        for run_id, (name, last) in confirmed.items():
            view = store.get_run(_user(), "fast-crash", run_id)
            while (view is None or view.state == "running") and time.monotonic() < deadline:
                time.sleep(0.2)  # a surviving writer may still be draining
                view = store.get_run(_user(), "fast-crash", run_id)
            assert view is not None, f"{run_id} never reached the store"
            steps, _ = store.read_series(view.incarnation_id, "i")
            assert len(steps) == len(set(steps.tolist())), f"{run_id}: a step was stored twice"
            assert set(range(last + 1)) <= set(steps.tolist()), f"{run_id}: lost a step whose log() returned"
            assert view.state == "crashed" and view.name == name  # the journal's header carries the name


def test_api_finds_a_run_of_this_process_right_after_init(tmp_path: Path, quiet: dict[str, Any]) -> None:
    run = branchline.init("at-once", config={"lr": 0.5}, settings=quiet)
    assert run._res.store is None  # a fast start: the writer is still creating the run
    api = branchline.Api(overrides={"store_url": f"sqlite:///{tmp_path / 'branchline' / 'store.db'}"})
    found = api.run(run.path)
    assert (found.id, found.name, found.state, found.config) == (run.id, run.name, "running", {"lr": 0.5})
    second = branchline.init("at-once", reinit="create_new", settings=quiet)
    assert [r.id for r in api.runs(f"{run.entity}/at-once")] == [run.id, second.id]  # listed at once too
    second.finish()
    with pytest.raises(branchline.RunNotFoundError):
        api.run(f"{run.entity}/at-once/nosuchrun")  # nothing of this process to wait for: at once
    run.finish()
