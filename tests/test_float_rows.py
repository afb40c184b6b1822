"""Rows of floats take the binary journal path: exact round trip, fallbacks, crash safety."""

from __future__ import annotations

import getpass
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import branchline
from branchline.sdk.journal_read import JournalReader, RowBlocks, read_journal
from branchline.vocab import RecordKind
from tests.conftest import rows, store_at


def test_float_rows_round_trip_with_layout_changes_and_fallbacks(tmp_path: Path, quiet: dict[str, Any]) -> None:
    run = branchline.init(project="fr", mode="offline", id="f1", settings=quiet)
    expected: dict[str, dict[int, Any]] = {"a": {}, "b": {}, "c": {}}
    for step in range(30):
        if step % 3 == 2:
            row: dict[str, Any] = {"c": step * 0.25}  # alternating key sets get their own layouts
        else:
            row = {"a": step + 0.5, "b": -step / 7}
        if step == 10:
            row = {"a": "not a number", "b": 1.5}  # a str in a float layout: stored as it is
        if step == 13:
            row = {"a": 7, "b": 2.0}  # an int in a float layout is stored as a number
        run.log(row)
        for key, value in row.items():
            expected[key][step] = value
    run.finish()
    (journal,) = tmp_path.glob("branchline/runs/*/journal.blj")
    kinds = [int(r[1]) for r in read_journal(journal).records]
    assert kinds.count(RecordKind.ROW_SCHEMA) == 2 and kinds.count(RecordKind.FLOAT_ROW) >= 25
    assert kinds.count(RecordKind.HISTORY) >= 2  # the first row of each key set, and the fallbacks
    result = subprocess.run([sys.executable, "-m", "branchline", "sync"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    with store_at(tmp_path) as store:
        for key, want in expected.items():
            got = rows(store, getpass.getuser(), "fr", "f1", key)
            assert got == want, key
        summary = store.require_run(getpass.getuser(), "fr", "f1").summary
        assert summary["a"] == 28.5 and summary["c"] == 29 * 0.25 and summary["_step"] == 29


def test_define_metric_after_float_rows_still_aggregates(tmp_path: Path, quiet: dict[str, Any]) -> None:
    run = branchline.init(project="fr", settings=quiet)
    for value in (3.0, 1.0):
        run.log({"loss": value})
    run.define_metric("loss", summary="min,max")
    for value in (5.0, 0.5):
        run.log({"loss": value})
    assert run.summary["loss"] == {"min": 0.5, "max": 5.0}
    run.finish()
    with store_at(tmp_path) as store:
        view = store.require_run(run.entity, "fr", run.id)
        assert view.summary["loss"] == {"min": 0.5, "max": 5.0}
        assert rows(store, run.entity, "fr", run.id, "loss") == {0: 3.0, 1: 1.0, 2: 5.0, 3: 0.5}


def test_blocks_replayed_over_an_applied_prefix_never_duplicate(tmp_path: Path, quiet: dict[str, Any]) -> None:
    run = branchline.init(project="fr", mode="offline", id="f2", settings=quiet)
    for step in range(500):
        run.log({"x": step * 1.0, "y": step * 2.0})
    run.finish()
    (journal,) = tmp_path.glob("branchline/runs/*/journal.blj")
    records = read_journal(journal).records
    from branchline.runspec import RunSpec

    spec = RunSpec.from_json(dict(records[0][2]))
    with store_at(tmp_path) as store:
        store.begin_run(spec)
        store.apply(spec.session_id, RowBlocks().compact(records[1:300]))
        store.apply(spec.session_id, RowBlocks().compact(records[1:]))  # overlaps the first batch
        view = store.require_run(getpass.getuser(), "fr", "f2")
        steps, values = store.read_series(view.incarnation_id, "y")
        assert steps.tolist() == list(range(500)) and np.array_equal(values, steps * 2.0)


def test_float_rows_survive_sigkill_then_sync(tmp_path: Path) -> None:
    script = tmp_path / "floats.py"
    script.write_text(
        "import sys, branchline\n"
        "run = branchline.init(project='fk', id=sys.argv[1], settings={'quiet': True, 'x_disable_stats': True, 'console': 'off'})\n"
        "print('writer', run._res.writer.proc.pid, flush=True)\n"
        "i = 0\n"
        "while True:\n"
        "    run.log({'x': float(i), 'y': i * 0.5})\n"
        "    print(i, flush=True)\n"
        "    i += 1\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    confirmed = {}
    for attempt, pause in enumerate((0.1, 0.3, 0.6)):
        run_id = f"fk{attempt}"
        child = subprocess.Popen(
            [sys.executable, str(script), run_id], cwd=tmp_path, stdout=subprocess.PIPE, text=True, env=env
        )
        assert child.stdout is not None
        writer_pid = int(child.stdout.readline().split()[1])
        time.sleep(pause)
        child.send_signal(signal.SIGKILL)
        os.kill(writer_pid, signal.SIGKILL)
        out, _ = child.communicate()
        confirmed[run_id] = [int(line) for line in out.split() if line.isdigit()][-1]
    synced = subprocess.run(
        [sys.executable, "-m", "branchline", "sync"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert synced.returncode == 0, synced.stderr
    with store_at(tmp_path) as store:
        for run_id, last in confirmed.items():
            view = store.require_run(getpass.getuser(), "fk", run_id)
            steps, values = store.read_series(view.incarnation_id, "x")
            assert len(steps) == len(set(steps.tolist()))
            assert set(range(last + 1)) <= set(steps.tolist())
            assert np.array_equal(values, steps.astype(float)) and view.state == "crashed"


def test_live_summary_follows_journal_order_across_layouts(quiet: dict[str, Any]) -> None:
    run = branchline.init(project="fr", mode="offline", settings=quiet)
    for _ in range(2):
        run.log({"loss": 1.0, "acc": 0.5})
        run.log({"loss": 9.0})  # another layout sharing `loss`
    assert run.summary["loss"] == 9.0 and run.summary["acc"] == 0.5
    run.log({"loss": 2.0, "acc": 0.6})
    assert dict(run.summary.items())["loss"] == 2.0
    run.log({"loss": "diverged"})  # not a float: the msgpack path, after the folded rows
    assert run.summary["loss"] == "diverged" and run.summary["acc"] == 0.6
    run.log({"loss": 3.0})
    run.summary["best"] = 1.0  # an explicit edit sees the rows before it
    assert run.summary["loss"] == 3.0 and run.summary["best"] == 1.0
    run.finish()


def _journal_with_mixed_rows(tmp_path: Path, quiet: dict[str, Any]) -> Path:
    run = branchline.init(project="fr", mode="offline", id="bulk", settings=quiet)
    for step in range(400):
        if step % 50 == 7:
            run.log({"x": "text"})  # a msgpack record between runs of float rows
        elif step % 100 < 60:
            run.log({"x": step * 1.0, "y": -step / 3})
        else:
            run.log({"z": step * 0.5})  # another layout, another width
        if step == 200:
            run.log({})  # a row with no keys at all
    run.finish()
    (journal,) = tmp_path.glob("branchline/runs/*/journal.blj")
    return journal


def _tail_all(journal: Path, limit: int, *, final: bool = False) -> tuple[list[list[Any]], int]:
    reader = JournalReader(journal, blocks=True, final=final)
    out: list[list[Any]] = []
    empty = 0
    while empty < 2:  # a live reader looks at damage twice before it reads past it
        records, _ = reader.read_available(limit=limit)
        empty = 0 if records else empty + 1
        out.extend(records)
    return out, reader.offset


def _rows_of(records: list[list[Any]]) -> list[tuple[Any, ...]]:
    """Every record, with blocks opened up row by row, in a form that compares exactly."""
    out: list[tuple[Any, ...]] = []
    for record in records:
        if int(record[1]) == RecordKind.ROW_BLOCK:
            _, _, keys, seqs, steps, stamps, runtimes, values = record
            seq = np.frombuffer(seqs, "<i8")
            matrix = np.frombuffer(values, "<f8").reshape(len(seq), len(keys))
            for i in range(len(seq)):
                out.append(
                    (
                        int(seq[i]),
                        tuple(keys),
                        int(np.frombuffer(steps, "<i8")[i]),
                        float(np.frombuffer(stamps, "<f8")[i]),
                        float(np.frombuffer(runtimes, "<f8")[i]),
                        tuple(matrix[i].tolist()),
                    )
                )
        else:
            out.append((int(record[0]), int(record[1]), repr(record[2:])))
    return out


@pytest.mark.parametrize("limit", [1, 7, 20_000])
def test_the_writers_bulk_decoding_matches_the_record_path(tmp_path: Path, quiet: dict[str, Any], limit: int) -> None:
    journal = _journal_with_mixed_rows(tmp_path, quiet)
    expected = RowBlocks().compact(read_journal(journal).records)
    got, _ = _tail_all(journal, limit)
    assert all(len(r[3]) <= 8 * limit for r in got if int(r[1]) == RecordKind.ROW_BLOCK)  # batches keep the limit
    assert _rows_of(got) == _rows_of(expected)
    assert sum(int(r[1]) == RecordKind.ROW_BLOCK for r in got) >= (8 if limit > 7 else 1)


def test_bulk_decoding_reads_past_a_corrupt_row_and_stops_at_a_torn_one(tmp_path: Path, quiet: dict[str, Any]) -> None:
    journal = _journal_with_mixed_rows(tmp_path, quiet)
    data = bytearray(journal.read_bytes())
    good = read_journal(journal)
    # Corrupt one value byte of a float row in the middle of a run: that row alone is lost, the
    # bulk decoding stops just before it and resumes just after it.
    rows_seen = [r for r in good.records if int(r[1]) == RecordKind.FLOAT_ROW]
    victim = rows_seen[len(rows_seen) // 2]
    needle = victim[6]  # the row's value bytes
    at = bytes(data).index(needle)
    data[at] ^= 0xFF
    journal.write_bytes(bytes(data))
    damaged = read_journal(journal)
    expected = RowBlocks().compact(damaged.records)
    seqs = [row[0] for row in _rows_of(expected)]
    all_seqs = [row[0] for row in _rows_of(RowBlocks().compact(good.records))]
    assert seqs == [seq for seq in all_seqs if seq != victim[0]]
    (skip,) = damaged.skipped
    assert (skip.first_lost, skip.last_lost) == (victim[0], victim[0])
    assert skip.offset < at < skip.offset + skip.size
    assert damaged.torn_bytes == 0
    for final in (False, True):
        got, offset = _tail_all(journal, 20_000, final=final)
        assert _rows_of(got) == _rows_of(expected)
        assert offset == damaged.end_offset == len(data)
    # A torn last frame: the rows before it are read, the partial one is left for later.
    journal.write_bytes(bytes(data[: at - 40]))
    got, _ = _tail_all(journal, 20_000)
    assert _rows_of(got) == _rows_of(RowBlocks().compact(read_journal(journal).records))
