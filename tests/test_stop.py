"""A stop from the UI or API ends in a known state within a bounded time, whatever the process does.

- A training process that ignores SIGINT (or SIGINT and SIGTERM) is escalated on by its writer:
  SIGTERM, then SIGKILL; the run ends `killed` with a note, and every step logged before is stored.
- A run whose process cannot be reached (its writer is gone, its host elsewhere) is marked `killed`
  by the server's background loop once the stop timeout has passed, without anyone reading it.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from branchline.sdk.stopping import StopEscalation
from branchline.server.app import create_app
from branchline.server.settings import ServerSettings
from branchline.store import Store, open_store
from branchline.store.reads import RunView
from branchline.store.stops import NOTE_ENDED, NOTE_ESCALATED, NOTE_UNCONFIRMED, STOP_KEY
from tests import store_factory
from tests.backends import ServerProcess
from tests.conftest import QUIET
from tests.test_store_contract import history, spec

any_store_url = store_factory.any_store_url

STEPS = 300

_STUBBORN = """
    import signal, sys, time, branchline
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as under nohup, or a framework's own handler
    if sys.argv[2] == "term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    settings = {{**{quiet!r}, "heartbeat_seconds": 0.2, "x_stop_grace": 0.5}}
    if sys.argv[1] != "-":  # else a server, from BRANCHLINE_BASE_URL and BRANCHLINE_API_KEY
        settings["store_url"] = sys.argv[1]
    run = branchline.init(entity=sys.argv[3], project="stops", id="stubborn", settings=settings)
    for step in range({steps}):
        run.log({{"x": float(step)}})
    print("LOGGED", flush=True)
    while True:  # training that never notices the stop
        time.sleep(0.05)
"""


def _child_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    env["BRANCHLINE_CONFIG_DIR"] = str(tmp_path / ".config")
    return env


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.mark.parametrize("ignores", ["int", "term"], ids=["ignores-SIGINT", "ignores-SIGINT-and-SIGTERM"])
def test_a_process_ignoring_the_interrupt_is_terminated_and_the_run_ends_killed(
    sqlite_url: str, tmp_path: Path, ignores: str
) -> None:
    child = _start_stubborn(tmp_path, sqlite_url, ignores, "team", {})
    try:
        with open_store(sqlite_url) as store:
            store.request_stop(_wait_for_state(store, "team", "stops", "stubborn", "running", timeout=20))
            requested = time.monotonic()
            # Heartbeat (0.2 s) + SIGINT's grace (0.5 s) + SIGTERM's grace (0.5 s), with room to spare.
            returncode = child.wait(timeout=20)
            ended = time.monotonic() - requested
            expected = -signal.SIGKILL if ignores == "term" else -signal.SIGTERM
            assert returncode == expected, (returncode, child.stderr.read() if child.stderr else "")
            # Reads meanwhile may see the process gone first (killed, "the process has ended"); the
            # writer then stores the journal and says why.
            run = _wait_for_state(store, "team", "stops", "stubborn", "killed", timeout=20, note=NOTE_ESCALATED)
            assert run.metadata[STOP_KEY]["ended_at"] >= run.metadata[STOP_KEY]["requested_at"]
            steps, values = store.read_series(run.incarnation_id, "x")
            assert list(steps) == list(range(STEPS)) and list(values) == [float(s) for s in range(STEPS)]
        assert ended < 15, f"the stubborn process took {ended:.1f} s to end"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def _start_stubborn(
    tmp_path: Path, target: str, ignores: str, entity: str, env: dict[str, str]
) -> subprocess.Popen[str]:
    """A training process that ignores SIGINT (and SIGTERM), once it has logged STEPS steps."""
    code = textwrap.dedent(_STUBBORN.format(quiet=QUIET, steps=STEPS))
    child = subprocess.Popen(
        [sys.executable, "-c", code, target, ignores, entity],
        cwd=tmp_path,
        env={**_child_env(tmp_path), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if line.strip() != "LOGGED":
        child.kill()
        pytest.fail(f"the training process did not start: {child.communicate()[1]}")
    return child


def test_a_remote_run_ignoring_the_interrupt_ends_killed_on_the_server(tmp_path: Path) -> None:
    """Over HTTP: the writer escalates and tells the server, which writes the note."""
    workdir = tmp_path / "server"
    workdir.mkdir()
    store_url = f"sqlite:///{workdir / 'store.db'}"
    with open_store(store_url) as store:
        store.create_user("alice")
        key = store.create_api_key("alice")[1]
    # A long stop timeout: the writer's escalation, not the server's bound, ends this run.
    server = ServerProcess(store_url, workdir, extra_args=["--stop-timeout", "600"])
    server.start()
    try:
        env = {"BRANCHLINE_BASE_URL": server.base_url, "BRANCHLINE_API_KEY": key}
        child = _start_stubborn(tmp_path, "-", "int", "alice", env)
        try:
            headers = {"Authorization": f"Bearer {key}"}
            url = f"{server.base_url}/api/v1/runs/alice/stops/stubborn"
            deadline = time.monotonic() + 20
            while httpx.get(url, headers=headers).status_code != 200:
                assert time.monotonic() < deadline, "the run never reached the server"
                time.sleep(0.1)
            stopped = httpx.post(url + "/stop", headers=headers)
            assert stopped.status_code == 200, stopped.text
            assert child.wait(timeout=20) == -signal.SIGTERM
            deadline = time.monotonic() + 20
            while (detail := httpx.get(url, headers=headers).json())["metadata"].get(STOP_KEY, {}).get(
                "note"
            ) != NOTE_ESCALATED:
                assert time.monotonic() < deadline, detail
                time.sleep(0.1)
            assert detail["state"] == "killed"
            assert detail["last_step"] == STEPS - 1
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        with open_store(store_url) as store:
            run = store.require_run("alice", "stops", "stubborn")
            steps, _ = store.read_series(run.incarnation_id, "x")
            assert list(steps) == list(range(STEPS))
    finally:
        server.stop()


def _wait_for_state(
    store: Store, entity: str, project: str, run_id: str, state: str, timeout: float, note: str | None = None
) -> RunView:
    deadline = time.monotonic() + timeout
    while True:
        run = store.get_run(entity, project, run_id)
        done = run is not None and run.state == state
        done = done and (note is None or run.metadata.get(STOP_KEY, {}).get("note") == note)
        if done or time.monotonic() > deadline:
            assert done and run is not None, run
            return run
        time.sleep(0.05)


def test_a_stop_nobody_confirms_is_marked_killed_by_the_servers_bound(any_store_url: str) -> None:
    """The run's process is on another host and its writer went quiet: nothing can escalate."""
    with open_store(any_store_url) as store:
        s = spec("unreachable")  # host "elsewhere": its liveness comes from heartbeats only
        start = store.begin_run(s)
        store.apply(s.session_id, history(0, 10))
        store.heartbeat(start.incarnation_id)  # alive a moment ago; then silence (crash timeout: 300 s)
    settings = ServerSettings(store_url=any_store_url, ui_dist=None, stop_timeout=1.0)
    app = create_app(settings)
    with TestClient(app) as client:
        url = "/api/v1/runs/team/proj/unreachable"
        stopped = client.post(url + "/stop")
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["stop_requested"] is True and stopped.json()["state"] == "running"
        requested_at = stopped.json()["metadata"][STOP_KEY]["requested_at"]
        # Nobody reads the run meanwhile: the background loop (under its lease) ends it.
        time.sleep(3.5)
        with open_store(any_store_url) as other:
            view = other.get_incarnation(start.incarnation_id)
            assert view is not None and view.state == "killed", view
            assert view.metadata[STOP_KEY]["note"] == NOTE_UNCONFIRMED.format(seconds=1.0)
            assert view.metadata[STOP_KEY]["ended_at"] - requested_at >= 1.0
        detail = client.get(url).json()
        assert detail["state"] == "killed" and detail["metadata"][STOP_KEY]["note"].startswith("stopped from the UI")
        # A later heartbeat from the lost writer does not revive it, and it learns to stop.
        with open_store(any_store_url) as other:
            assert other.heartbeat(start.incarnation_id) is True
            assert other.require_run("team", "proj", "unreachable").state == "killed"
            steps, _ = other.read_series(start.incarnation_id, "loss")
            assert list(steps) == list(range(10))


def test_escalation_signals_only_its_own_training_process_and_only_when_due() -> None:
    """SIGTERM after one grace, SIGKILL after two; nothing once the process that started it is gone."""
    now = [100.0]
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        parent = [sleeper.pid]
        escalation = StopEscalation(sleeper.pid, 2.0, clock=lambda: now[0], parent=lambda: parent[0])
        escalation.tick()
        assert escalation.sent == []  # no stop yet
        escalation.request()
        now[0] += 1.9
        escalation.tick()
        assert escalation.sent == [] and not escalation.escalated
        now[0] += 0.2
        escalation.tick()
        assert escalation.sent == [signal.SIGTERM] and escalation.escalated
        assert sleeper.wait(timeout=10) == -signal.SIGTERM
        # Re-parented: the pid may name another process by now, so nothing more is sent.
        parent[0] = 1
        now[0] += 5
        escalation.tick()
        assert escalation.sent == [signal.SIGTERM] and escalation.gone
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def test_a_resumed_run_does_not_inherit_an_old_stop(any_store_url: str) -> None:
    with open_store(any_store_url) as store:
        first = spec("again")
        start = store.begin_run(first)
        store.request_stop(store.require_run("team", "proj", "again"))
        assert store.mark_killed(start.incarnation_id, NOTE_ESCALATED) is True
        assert store.mark_killed(start.incarnation_id, NOTE_ESCALATED) is False  # ended already
        store.begin_run(spec("again", resume="allow"))
        run = store.require_run("team", "proj", "again")
        assert run.state == "running" and run.stop_requested is False
        assert store.heartbeat(start.incarnation_id) is False


def test_a_stopped_process_seen_gone_ends_killed_not_crashed(any_store_url: str) -> None:
    """On this host a dead pid reads as crashed at once; with a stop pending it reads as killed."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open_store(any_store_url) as store:
        s = dataclasses.replace(spec("gone"), host=socket.gethostname(), pid=proc.pid)
        start = store.begin_run(s)
        store.request_stop(store.require_run("team", "proj", "gone"))
        proc.kill()
        proc.wait()
        run = store.require_run("team", "proj", "gone")  # a read reaps
        assert run.state == "killed" and run.metadata[STOP_KEY]["note"] == NOTE_ENDED
        ended_at = run.metadata[STOP_KEY]["ended_at"]
        # The writer, having stored the journal, says why: the note is refined, the end time kept.
        assert store.mark_killed(start.incarnation_id, NOTE_ESCALATED) is True
        run = store.require_run("team", "proj", "gone")
        assert run.metadata[STOP_KEY] == {**run.metadata[STOP_KEY], "note": NOTE_ESCALATED, "ended_at": ended_at}
        # Without a stop, a dead pid is still a crash.
        other = dataclasses.replace(spec("plain"), host=socket.gethostname(), pid=proc.pid)
        store.begin_run(other)
        assert store.require_run("team", "proj", "plain").state == "crashed"
