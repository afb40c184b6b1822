"""Runtime and Duration, as the W&B docs define them: Runtime is the wall-clock time from start to end,
pauses included (a run finished, left alone, then resumed); Duration is the time it was actively
running, pauses excluded; so Runtime >= Duration. The store (both backends), the HTTP API,
`branchline.Api()` and `branchline runs` agree, and so does the summary's `_runtime`.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import branchline
from branchline.cli.main import cli
from branchline.errors import UsageError
from branchline.runspec import RunSpec
from branchline.store import Store, open_store
from branchline.vocab import RecordKind
from tests import store_factory

any_store_url = store_factory.any_store_url
PAUSE = 0.6


@pytest.fixture
def store(any_store_url: str, tmp_path: Path) -> Iterator[Store]:
    s = open_store(any_store_url, files_dir=tmp_path / "files")
    yield s
    s.close()


def _spec(run_id: str, **fields: Any) -> RunSpec:
    return RunSpec(
        entity="team",
        project="proj",
        run_id=run_id,
        incarnation_id=secrets.token_hex(8),
        session_id=secrets.token_hex(8),
        host="elsewhere",
        started_at=time.time(),
        **fields,
    )


def _session(store: Store, spec: RunSpec, first_rt: float, steps: range) -> float:
    """Log `steps` with the SDK clock starting at `first_rt`, then finish; the exit runtime."""
    records: list[list[Any]] = []
    rt = first_rt
    for i, step in enumerate(steps):
        rt = first_rt + 0.1 * (i + 1)
        records.append([i + 1, int(RecordKind.HISTORY), step, time.time(), rt, {"loss": 1.0 / (step + 1)}])
    records.append([len(records) + 1, int(RecordKind.EXIT), 0, "finished", rt + 0.05])
    store.apply(spec.session_id, records)
    return rt + 0.05


def test_a_pause_between_finish_and_resume_counts_in_runtime_not_in_duration(store: Store) -> None:
    first = _spec("paused")
    start = store.begin_run(first)
    assert start.runtime_offset == 0.0
    active = _session(store, first, 0.0, range(3))
    before = store.require_run("team", "proj", "paused")
    assert before.runtime == pytest.approx(active) and before.duration == pytest.approx(active)
    assert before.paused == 0.0

    time.sleep(PAUSE)
    again = _spec("paused", resume="allow")
    resumed = store.begin_run(again)
    # The SDK clock continues from the wall clock: its `_runtime` values count the pause.
    assert resumed.runtime_offset >= active + PAUSE
    end = _session(store, again, resumed.runtime_offset, range(3, 6))

    view = store.require_run("team", "proj", "paused")
    assert view.paused >= PAUSE
    assert view.runtime == pytest.approx(end)
    assert view.duration == pytest.approx(end - view.paused)
    assert view.runtime >= view.duration + PAUSE
    assert view.duration == pytest.approx(active + 0.35, abs=0.05)  # both sessions' active time
    assert view.summary["_runtime"] == pytest.approx(view.runtime)  # the summary agrees with Runtime

    # Filters and sort keys use the same meanings.
    assert store.count_runs("team", "proj", filters={"runtime": {"$gte": active + PAUSE}}) == 1
    assert store.count_runs("team", "proj", filters={"duration": {"$gte": active + PAUSE}}) == 0
    assert [r.run_id for r in store.list_runs("team", "proj", order="-runtime")] == ["paused"]
    assert [r.run_id for r in store.list_runs("team", "proj", order="+duration")] == ["paused"]


def test_a_run_never_paused_has_equal_runtime_and_duration(store: Store) -> None:
    spec = _spec("plain")
    store.begin_run(spec)
    end = _session(store, spec, 0.0, range(4))
    view = store.require_run("team", "proj", "plain")
    assert view.runtime == view.duration == pytest.approx(end)
    assert view.summary["_runtime"] == pytest.approx(end)


def test_a_bad_privacy_filter_is_a_usage_error(store: Store) -> None:
    with pytest.raises(UsageError, match="true or false"):
        store.count_runs("team", "proj", filters={"private": "yes"})


# -- the SDK, Api() and the CLI ------------------------------------------------------------------------
@pytest.fixture
def resumed_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    quiet = {"quiet": True, "x_disable_stats": True}
    run = branchline.init(project="rt", dir=str(tmp_path), id="again", settings=quiet)
    run.log({"loss": 1.0})
    run.finish()
    time.sleep(PAUSE)
    run = branchline.init(project="rt", dir=str(tmp_path), id="again", resume="allow", settings=quiet)
    run.log({"loss": 0.5})
    run.finish()
    return tmp_path


def test_api_and_cli_report_runtime_and_duration(resumed_run: Path) -> None:
    api = branchline.Api(overrides={"root_dir": str(resumed_run)})
    (run,) = list(api.runs("rt"))
    assert run.runtime >= run.duration + PAUSE * 0.9
    assert run.summary["_runtime"] == pytest.approx(run.runtime, abs=0.05)
    history = run.history(keys=["_runtime"], pandas=False)
    assert history[-1]["_runtime"] >= PAUSE  # the resumed rows' clock counts the pause

    result = CliRunner().invoke(cli, ["runs", "show", "rt/again", "--dir", str(resumed_run), "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["runtime"] >= shown["duration"] + PAUSE * 0.9
    assert shown["private"] is False
    listed = CliRunner().invoke(cli, ["runs", "list", "rt", "--dir", str(resumed_run)], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert "Runtime" in listed.output and "Duration" in listed.output
