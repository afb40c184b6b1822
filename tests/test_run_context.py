"""The live run's seams, in process: the run context, its shutdown phases, and sink capabilities."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import branchline
from branchline.errors import UsageError
from branchline.runspec import RunSpec, RunStart
from branchline.sdk.context import RunContext, ShutdownPhase
from branchline.sdk.http_sink import HttpSink
from branchline.sdk.journal import JournalWriter
from branchline.sdk.journal_read import read_journal
from branchline.sdk.sink import LocalSink, SinkCapabilities, local_store, run_file_uploader
from branchline.sdk.terminal import Terminal
from branchline.settings import Settings
from branchline.vocab import RecordKind


def _context() -> RunContext:
    spec = RunSpec(entity="e", project="p", run_id="r1", incarnation_id="i1", session_id="s1")
    start = RunStart.without_store(spec, name="n")
    devnull = Path(os.devnull)
    journal = JournalWriter(devnull, discard=True)
    return RunContext(journal, Settings(), start, run_dir=devnull, files_dir=devnull, terminal=Terminal(False))


class _Part:
    def __init__(self, name: str, stopped: list[str], fail: bool = False) -> None:
        self.name = name
        self.stopped = stopped
        self.fail = fail

    def stop(self) -> None:
        self.stopped.append(self.name)
        if self.fail:
            raise RuntimeError(f"{self.name} broke")


def test_parts_stop_phase_by_phase_then_in_attach_order(capsys: pytest.CaptureFixture[str]) -> None:
    ctx = _context()
    stopped: list[str] = []
    ctx.attach(_Part("console", stopped), ShutdownPhase.FLUSH_CONSOLE)
    ctx.attach(_Part("metadata", stopped), ShutdownPhase.STOP_PRODUCERS)
    ctx.attach(_Part("files", stopped), ShutdownPhase.STORE_FILES)
    ctx.attach(_Part("system", stopped), ShutdownPhase.STOP_PRODUCERS)
    ctx.attach(_Part("backend", stopped), ShutdownPhase.CLOSE_CLIENTS)
    ctx.attach(_Part("alerts", stopped), ShutdownPhase.DELIVER_ALERTS)
    ctx.attach(_Part("uploads", stopped, fail=True), ShutdownPhase.DRAIN_UPLOADS)
    ctx.stop_parts()
    # A part attached late (uploads, alerts) still stops before those that must see its output.
    assert stopped == ["uploads", "alerts", "metadata", "system", "files", "console", "backend"]
    assert "stopping _Part failed: uploads broke" in capsys.readouterr().err


def test_part_finds_the_first_attached_part_of_a_type() -> None:
    ctx = _context()
    first = _Part("a", [])
    ctx.attach(first, ShutdownPhase.STORE_FILES)
    ctx.attach(_Part("b", []), ShutdownPhase.STOP_PRODUCERS)
    assert ctx.part(_Part) is first
    assert ctx.part(int) is None


def test_warn_once_and_ensure_active(capsys: pytest.CaptureFixture[str]) -> None:
    ctx = _context()
    ctx.warn_once("k", "first")
    ctx.warn_once("k", "again")
    err = capsys.readouterr().err
    assert "first" in err and "again" not in err
    ctx.ensure_active("log")
    ctx.finished = True
    with pytest.raises(UsageError, match=r"Run \(r1\) is finished. The call to `log` will be ignored."):
        ctx.ensure_active("log")


def test_runtime_counts_from_the_incarnation_start_plus_what_came_before() -> None:
    ctx = _context()
    ctx.t0 -= 5.0
    assert 5.0 <= ctx.runtime() < 6.0


def test_sinks_declare_what_they_offer(tmp_path: Path) -> None:
    local = LocalSink(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        assert local.capabilities == SinkCapabilities(local_store=True)
        assert local_store(local) is local.store
        assert run_file_uploader(local) is None
    finally:
        local.close()
    remote = HttpSink("http://127.0.0.1:9", None)
    try:
        assert remote.capabilities == SinkCapabilities(run_files=True)
        assert local_store(remote) is None
        assert run_file_uploader(remote) is remote
    finally:
        remote.close()


def test_write_logs_adds_a_console_line_until_the_run_finishes(tmp_path: Path, quiet: dict[str, Any]) -> None:
    run = branchline.init(project="p", dir=tmp_path, mode="offline", settings={**quiet, "console": "off"})
    run.write_logs("a line of my own")
    journal = run._ctx.run_dir / "journal.blj"
    run.finish()
    run.write_logs("after finish: ignored")
    lines = [r[2] for r in read_journal(journal).records if r[1] == RecordKind.OUTPUT]
    assert [[stream, text] for stream, _, text in lines[0]] == [["stdout", "a line of my own"]]
    assert len(lines) == 1
