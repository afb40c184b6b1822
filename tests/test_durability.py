"""Crash safety, journal recovery and concurrent writers, with real processes and signals."""

from __future__ import annotations

import contextlib
import getpass
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from branchline.sdk.journal_read import read_journal
from tests.conftest import run_python, store_at

LOGGER = """
import sys, branchline
run = branchline.init(project="crash", id=sys.argv[1], settings={"quiet": True, "x_disable_stats": True, "console": "off"})
print("writer", run._res.writer.proc.pid, flush=True)
i = 0
while True:
    run.log({"i": i, "loss": 1.0 / (i + 1)})
    print(i, flush=True)
    i += 1
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    return subprocess.run(
        [sys.executable, "-m", "branchline", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120
    )


def test_sigkill_at_random_moments_loses_nothing_that_log_returned_for(tmp_path: Path) -> None:
    rng = random.Random(1234)
    script = tmp_path / "logger.py"
    script.write_text(LOGGER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    confirmed: dict[str, int] = {}
    for attempt in range(20):
        run_id = f"crash{attempt}"
        child = subprocess.Popen(
            [sys.executable, str(script), run_id], cwd=tmp_path, stdout=subprocess.PIPE, text=True, env=env
        )
        assert child.stdout is not None
        writer_pid = int(child.stdout.readline().split()[1])
        time.sleep(rng.uniform(0.05, 0.6))
        child.send_signal(signal.SIGKILL)
        if attempt % 2 == 0:
            # Half the time the writer dies too: only `branchline sync` can store the journal.
            with contextlib.suppress(ProcessLookupError):
                os.kill(writer_pid, signal.SIGKILL)
        out, _ = child.communicate()
        printed = [int(line) for line in out.split() if line.strip().isdigit()]
        confirmed[run_id] = printed[-1] if printed else -1
    time.sleep(0.5)
    result = cli("sync", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with store_at(tmp_path) as store:
        deadline = time.time() + 30
        for run_id, last in confirmed.items():
            view = store.require_run(getpass.getuser(), "crash", run_id)
            steps, values = store.read_series(view.incarnation_id, "i")
            while (len(steps) < last + 1 or view.state == "running") and time.time() < deadline:
                time.sleep(0.2)  # a surviving writer may still be draining
                view = store.require_run(getpass.getuser(), "crash", run_id)
                steps, values = store.read_series(view.incarnation_id, "i")
            assert len(steps) == len(set(steps.tolist())), f"{run_id}: a step was stored twice"
            assert set(range(last + 1)) <= set(steps.tolist()), f"{run_id}: lost a step whose log() returned"
            assert (steps == values).all()
            assert view.state == "crashed"
    # Nothing left to sync, and syncing again changes nothing.
    assert "Nothing to sync" in cli("sync", cwd=tmp_path).stdout


def test_four_processes_log_into_one_store_at_once(tmp_path: Path) -> None:
    code = """
    import sys, branchline
    run = branchline.init(project="many", id=sys.argv[1], settings={"quiet": True, "x_disable_stats": True, "console": "off"})
    for i in range(20_000):
        run.log({"i": i, "x": i * 0.5})
    run.finish()
    """
    script = tmp_path / "many.py"
    script.write_text(code.replace("\n    ", "\n"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), f"w{n}"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
        )
        for n in range(4)
    ]
    outcomes = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0]
    assert all(err == "" for _, err in outcomes), [err for _, err in outcomes]  # no writer errors either
    with store_at(tmp_path) as store:
        total = 0
        for n in range(4):
            view = store.require_run(getpass.getuser(), "many", f"w{n}")
            steps, values = store.read_series(view.incarnation_id, "i")
            assert steps.tolist() == list(range(20_000)) and (values == steps).all()
            assert view.state == "finished"
            total += len(steps)
        assert total == 80_000


def test_journal_with_garbage_appended_is_recovered_with_one_warning(tmp_path: Path) -> None:
    result = run_python(
        """
        import os, branchline
        run = branchline.init(project="torn", id="t1", mode="offline", settings={"quiet": True, "x_disable_stats": True, "console": "off"})
        for i in range(50):
            run.log({"i": i})
        os._exit(1)
        """,
        tmp_path,
    )
    assert result.returncode == 1
    (journal,) = tmp_path.glob("branchline/runs/*/journal.blj")
    good = len(read_journal(journal).records)
    with open(journal, "ab") as handle:
        handle.write(b"\x10\x00\x00\x00garbage-garbage-garbage")
    assert read_journal(journal).torn_bytes > 0
    synced = cli("sync", cwd=tmp_path)
    assert synced.returncode == 0, synced.stderr
    assert synced.stderr.count("torn or corrupt tail") == 1
    assert f"kept {good} records" in synced.stderr
    with store_at(tmp_path) as store:
        view = store.require_run(getpass.getuser(), "torn", "t1")
        steps, _ = store.read_series(view.incarnation_id, "i")
        assert steps.tolist() == list(range(50)) and view.state == "crashed"


def test_offline_run_is_stored_by_sync(tmp_path: Path) -> None:
    result = run_python(
        """
        import branchline
        run = branchline.init(project="off", id="o1", mode="offline", config={"a": 1}, settings={"quiet": True, "x_disable_stats": True, "console": "off"})
        for i in range(10):
            run.log({"i": i})
        run.finish()
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "branchline" / "store.db").exists()  # offline touches no store
    synced = cli("sync", "--dry-run", cwd=tmp_path)
    assert "would sync" in synced.stdout
    synced = cli("sync", cwd=tmp_path)
    assert "Synced" in synced.stdout and "(finished)" in synced.stdout
    with store_at(tmp_path) as store:
        view = store.require_run(getpass.getuser(), "off", "o1")
        assert view.state == "finished" and view.config == {"a": 1} and view.last_step == 9


def test_next_init_in_the_same_directory_stores_left_over_journals(tmp_path: Path) -> None:
    run_python(
        """
        import os, branchline
        run = branchline.init(project="left", id="l1", mode="offline", settings={"quiet": True, "x_disable_stats": True, "console": "off"})
        run.log({"i": 1})
        os._exit(1)
        """,
        tmp_path,
    )
    result = run_python(
        """
        import branchline
        run = branchline.init(project="left", id="l2", settings={"quiet": True, "x_disable_stats": True, "console": "off"})
        run.finish()
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    with store_at(tmp_path) as store:
        assert store.require_run(getpass.getuser(), "left", "l1").state == "crashed"


def test_a_broken_store_gives_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-db"
    bad.write_text("this is not sqlite")
    result = run_python(
        f"""
        import branchline
        try:
            branchline.init(project="p", settings={{"store_url": "sqlite:///{bad}", "quiet": True}})
        except branchline.Error as exc:
            print("clear error:", type(exc).__name__)
        except Exception as exc:
            print("raw error:", type(exc).__name__, exc)
        """,
        tmp_path,
    )
    assert "clear error: StoreError" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("flag", ["quiet"])
def test_terminal_output(tmp_path: Path, flag: str) -> None:
    loud = run_python(
        """
        import branchline
        run = branchline.init(project="term", settings={"x_disable_stats": True, "console": "off"})
        for i in range(50):
            run.log({"loss": 1 / (i + 1)})
        run.finish()
        """,
        tmp_path,
    )
    assert "Starting run" in loud.stderr and "branchline ui" in loud.stderr
    assert "Run history:" in loud.stderr and "loss" in loud.stderr and "Run files:" in loud.stderr
    quiet = run_python(
        f"""
        import branchline
        run = branchline.init(project="term", settings={{"x_disable_stats": True, "console": "off", "{flag}": True}})
        run.log({{"loss": 1}})
        run.finish()
        """,
        tmp_path,
    )
    assert quiet.stderr == ""
