"""Durability promises of docs/concepts.md that no other test tries on its own.

Each test is named after the promise it tries; docs/concepts.md lists every promise with its test
(checked by tests/test_promises_doc.py).
"""

from __future__ import annotations

import getpass
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tests.conftest import store_at
from tests.test_durability import LOGGER


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}


def _kill_training_mid_run(tmp_path: Path, run_id: str) -> tuple[int, int]:
    """Start the logger, SIGKILL the training process after some steps; (writer pid, last acknowledged step)."""
    script = tmp_path / "logger.py"
    script.write_text(LOGGER)
    child = subprocess.Popen(
        [sys.executable, str(script), run_id], cwd=tmp_path, stdout=subprocess.PIPE, text=True, env=_env()
    )
    assert child.stdout is not None
    writer_pid = int(child.stdout.readline().split()[1])
    last = -1
    for line in child.stdout:  # read until enough steps are acknowledged, then kill at once
        last = int(line)
        if last >= 2000:
            break
    child.send_signal(signal.SIGKILL)
    rest, _ = child.communicate()
    printed = [int(word) for word in rest.split() if word.strip().isdigit()]
    return writer_pid, max([last, *printed])


def _stored_steps(tmp_path: Path, run_id: str) -> tuple[str, np.ndarray]:
    with store_at(tmp_path) as store:
        view = store.get_run(getpass.getuser(), "crash", run_id)
        if view is None:
            return "absent", np.array([], dtype=np.int64)
        steps, _ = store.read_series(view.incarnation_id, "i")
        return str(view.state), steps


def test_when_the_training_process_dies_its_writer_stores_every_step_and_marks_the_run_crashed(
    tmp_path: Path,
) -> None:
    """No `sync` here: the surviving writer alone drains the journal and records the crash."""
    _, last = _kill_training_mid_run(tmp_path, "drained")
    deadline = time.monotonic() + 60
    state, steps = _stored_steps(tmp_path, "drained")
    while (state != "crashed" or len(steps) < last + 1) and time.monotonic() < deadline:
        time.sleep(0.2)
        state, steps = _stored_steps(tmp_path, "drained")
    assert state == "crashed"
    assert set(range(last + 1)) <= set(steps.tolist()), "a step whose log() returned was lost"
    assert len(steps) == len(set(steps.tolist())), "a step was stored twice"


def test_sync_running_while_the_writer_drains_stores_every_step_exactly_once(tmp_path: Path) -> None:
    """Applying is idempotent on (writer session, sequence): a `sync` racing the live writer adds nothing twice."""
    _, last = _kill_training_mid_run(tmp_path, "raced")
    syncs = [
        subprocess.run(
            [sys.executable, "-m", "branchline", "sync"], cwd=tmp_path, capture_output=True, text=True, env=_env()
        )
        for _ in range(2)
    ]
    assert all(s.returncode == 0 for s in syncs), [s.stderr for s in syncs]
    deadline = time.monotonic() + 60
    state, steps = _stored_steps(tmp_path, "raced")
    while (state != "crashed" or len(steps) < last + 1) and time.monotonic() < deadline:
        time.sleep(0.2)
        state, steps = _stored_steps(tmp_path, "raced")
    assert state == "crashed"
    assert set(range(last + 1)) <= set(steps.tolist()), "a step whose log() returned was lost"
    assert len(steps) == len(set(steps.tolist())), "a step was stored twice"
