"""One bad value never poisons a run: `log()` refuses what no store can hold, and a record the store
still cannot hold is set aside (reported once, naming the run, step and key) while the rest is stored,
by the writer, by `branchline sync` and by the server alike.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError, StatementError

import branchline
from branchline.rejects import Rejected
from branchline.runspec import RunSpec
from branchline.sdk.lifecycle import registry
from branchline.store import Store
from branchline.store.apply import record_at_fault
from branchline.vocab import RecordKind
from tests.backends import Backend, history
from tests.conftest import QUIET


def test_a_bad_value_under_a_key_seen_before_is_refused_too(quiet: dict[str, Any]) -> None:
    run = branchline.init(project="bad", settings=quiet)
    run.log({"s": "text"})  # `s` is a scalar key now: its rows take the fast path
    with pytest.raises(TypeError, match="bytes"):
        run.log({"s": b"\xff"})
    run.finish()


def test_an_int_past_64_bits_is_stored_as_a_float(backend: Backend, quiet: dict[str, Any]) -> None:
    run = branchline.init(project="big", settings=quiet)
    run.log({"big": 2**70})
    run.log({"big": 2**70, "n": 1.0})
    run.finish()
    stored = backend.run(run.entity, "big", run.id)
    assert history(stored, "big") == {0: float(2**70), 1: float(2**70)}


def _bad_record_mid_run(run: branchline.Run) -> int:
    """A record `log()` would refuse, written as an older SDK could have: the step it sits at."""
    for i in range(3):
        run.log({"a": float(i), "s": "x"})
    step = run.step
    run._journal.write(RecordKind.HISTORY, step, time.time(), 0.5, {"by": b"\xff\x00"})
    for i in range(3, 7):
        run.log({"a": float(i), "s": "x"}, step=step + i - 2)
    return step


def test_the_writer_stores_every_row_around_a_record_it_cannot_store(
    backend: Backend, quiet: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    before = registry.writer_errors
    run = branchline.init(project="iso", settings=quiet)
    step = _bad_record_mid_run(run)
    run.finish()
    err = capsys.readouterr().err
    # Reported once, naming the run, the step and the key.
    assert err.count("could not be stored") == 1, err
    assert run.path in err and f"step {step}" in err and "'by'" in err
    registry.writer_errors = before  # the one report above is what this test expects
    stored = backend.run(run.entity, "iso", run.id)
    assert history(stored, "a") == {0: 0.0, 1: 1.0, 2: 2.0, **{step + i - 2: float(i) for i in range(3, 7)}}
    assert stored.state == "finished"


def test_sync_stores_every_row_around_a_record_it_cannot_store(backend: Backend, tmp_path: Path) -> None:
    run = branchline.init(project="off", id="o1", mode="offline", entity=backend.entity, settings=dict(QUIET))
    step = _bad_record_mid_run(run)
    run.finish()
    # `branchline sync` sends to where the backend points (the store here, or the server).
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    synced = subprocess.run(
        [sys.executable, "-m", "branchline", "sync"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120
    )
    assert synced.returncode == 0, synced.stderr
    assert "could not be stored" in synced.stderr and f"step {step}" in synced.stderr, synced.stderr
    assert "'by'" in synced.stderr
    stored = backend.run(run.entity, "off", "o1")
    assert stored.state == "finished"
    assert history(stored, "a") == {0: 0.0, 1: 1.0, 2: 2.0, **{step + i - 2: float(i) for i in range(3, 7)}}


def test_the_store_sets_aside_a_record_it_cannot_hold_and_a_database_fault_is_not_one(store: Store) -> None:
    spec = RunSpec(entity="e", project="p", run_id="r1", incarnation_id="inc1", session_id="ses1", host="elsewhere")
    start = store.begin_run(spec)
    hist = int(RecordKind.HISTORY)
    steps = [0, 1, 2, 4, 5, 6]  # the bad record sits at step 3
    records = [[0, hist, step, 1.0, 0.1, {"a": float(i)}] for i, step in enumerate(steps)]
    records.insert(3, [0, hist, 3, 1.0, 0.1, {"by": b"\xff\x00"}])
    for i, record in enumerate(records):
        record[0] = i + 1  # sequences in order; the bad record is the 4th
    rejected: list[Rejected] = []
    assert store.apply("ses1", records, rejected=rejected) == 7
    assert [(r.sequence, r.step, r.key) for r in rejected] == [(4, 3, "by")]
    stored, values = store.read_series(start.incarnation_id, "a")
    assert stored.tolist() == steps and values.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    # Applied again (a replay), nothing is duplicated and nothing is reported twice.
    again: list[Rejected] = []
    assert store.apply("ses1", records, rejected=again) == 7 and again == []
    # An error that is the database's, not the records', is never pinned on a record.
    assert not record_at_fault(OperationalError("INSERT", {}, Exception("database is locked")))
    assert record_at_fault(StatementError("bind", "INSERT", {}, TypeError("not JSON serializable")))
