"""Remote mode against a real `branchline server` process on a loopback port.

The SDK logs, forks and rewinds runs over HTTP and `Api` reads them back; a run stopped from the
API ends `killed`; the server is SIGKILLed and restarted while three runs log, and frozen (a
network drop) mid-run: every step arrives exactly once and `log()` never waits for the network.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, text

import branchline
from branchline.errors import RunNotFoundError, UsageError
from branchline.store import open_store
from tests.backends import ServerProcess
from tests.conftest import QUIET
from tests.store_factory import pg_available

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="module")
def pg_store_url() -> Iterator[str]:
    if not pg_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    name = f"branchline_remote_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _server(store_url: str, workdir: Path) -> tuple[ServerProcess, str]:
    workdir.mkdir(parents=True, exist_ok=True)
    with open_store(store_url) as store:
        store.create_user("alice")
        key = store.create_api_key("alice")[1]
    server = ServerProcess(store_url, workdir)
    server.start()
    return server, key


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    server, key = _server(f"sqlite:///{tmp_path / 'server' / 'store.db'}", tmp_path / "server")
    try:
        yield server, key
    finally:
        server.stop()


@pytest.fixture
def pg_server(pg_store_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    server, key = _server(pg_store_url, tmp_path / "server")
    try:
        yield server, key
    finally:
        server.stop()


def _remote_env(server: ServerProcess, key: str) -> dict[str, str]:
    return {"BRANCHLINE_BASE_URL": server.base_url, "BRANCHLINE_API_KEY": key}


# -- the SDK and Api over HTTP ----------------------------------------------------------------------
def test_sdk_logs_forks_and_rewinds_remotely(
    sqlite_server: tuple[ServerProcess, str], monkeypatch: pytest.MonkeyPatch, quiet: dict[str, Any]
) -> None:
    server, key = sqlite_server
    for name, value in _remote_env(server, key).items():
        monkeypatch.setenv(name, value)

    run = branchline.init(project="remote", config={"lr": 0.1}, settings=quiet)
    assert run.entity == "alice"  # the key owner's entity, asked from the server
    assert run.url == f"{server.base_url}/alice/remote/runs/{run.id}"
    for step in range(300):
        run.log({"loss": 1.0 / (step + 1), "tag": f"s{step}"})
    run.summary["best"] = 0.5
    run.finish()

    fork = branchline.init(project="remote", fork_from=f"{run.id}?_step=99", config={"lr": 0.2}, settings=quiet)
    assert fork.starting_step == 100 and fork.config["lr"] == 0.2
    for step in range(100, 150):
        fork.log({"loss": 10.0}, step=step)
    fork.finish()

    rewind = branchline.init(project="remote", resume_from=f"{run.id}?_step=199", settings=quiet)
    assert rewind.id == run.id and rewind.starting_step == 200
    rewind.log({"loss": -1.0})
    rewind.finish()

    with pytest.raises(RunNotFoundError, match="no run 'missing'"):
        branchline.init(project="remote", fork_from="missing?_step=3", settings=quiet)
    with pytest.raises(UsageError, match="already exists"):
        branchline.init(project="remote", id=run.id, resume="never", settings=quiet)

    api = branchline.Api()
    assert api.default_entity == "alice"
    runs = api.runs("remote")
    assert sorted(r.id for r in runs) == sorted([run.id, fork.id])
    rewound = api.run(f"remote/{run.id}")
    steps, values = api.backend.read_series(rewound.incarnation_id, "loss")
    assert list(steps) == [*range(200), 200] and values[-1] == -1.0 and values[5] == pytest.approx(1 / 6)
    forked = api.run(f"remote/{fork.id}")
    steps, values = api.backend.read_series(forked.incarnation_id, "loss")
    assert list(steps) == list(range(150)) and np.all(values[100:] == 10.0)
    assert forked.summary["loss"] == 10.0 and forked.config["lr"] == 0.2
    assert [v for _, v in api.backend.read_objects(rewound.incarnation_id, "tag")][:3] == ["s0", "s1", "s2"]
    assert len(api.backend.archived(api.backend.get_run("alice", "remote", run.id))) == 1  # type: ignore[arg-type]
    assert rewound.state == "finished"
    api.close()


def test_stop_from_the_api_interrupts_a_remote_run(sqlite_server: tuple[ServerProcess, str], tmp_path: Path) -> None:
    server, key = sqlite_server
    code = f"""
        import time, branchline
        run = branchline.init(project="stops", id="victim", settings={{**{QUIET!r}, "heartbeat_seconds": 0.3}})
        try:
            for step in range(3000):
                run.log({{"x": step}})
                time.sleep(0.01)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            raise
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    env.update(_remote_env(server, key), BRANCHLINE_CONFIG_DIR=str(tmp_path / ".config"))
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True
    )
    headers = {"Authorization": f"Bearer {key}"}
    url = f"{server.base_url}/api/v1/runs/alice/stops/victim"
    deadline = time.monotonic() + 30
    while httpx.get(url, headers=headers).status_code != 200:
        assert time.monotonic() < deadline and child.poll() is None
        time.sleep(0.1)
    assert httpx.post(url + "/stop", headers=headers).status_code == 200
    out, _ = child.communicate(timeout=60)
    assert "interrupted" in out and child.returncode != 0
    assert httpx.get(url, headers=headers).json()["state"] == "killed"


# -- faults -------------------------------------------------------------------------------------------
_LOGGER = """
    import json, sys, time, branchline
    steps, pause = int(sys.argv[1]), float(sys.argv[2])
    run = branchline.init(project="faults", id=sys.argv[3], settings={quiet!r})
    worst = 0.0
    for step in range(steps):
        began = time.perf_counter()
        run.log({{"x": float(step), "name": f"n{{step}}"}})
        worst = max(worst, time.perf_counter() - began)
        time.sleep(pause)
    run.finish()
    print(json.dumps({{"max_log_seconds": worst}}), flush=True)
"""


def _start_loggers(
    server: ServerProcess, key: str, tmp_path: Path, ids: list[str], steps: int, pause: float
) -> list[Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    env.update(_remote_env(server, key), BRANCHLINE_CONFIG_DIR=str(tmp_path / ".config"))
    code = textwrap.dedent(_LOGGER.format(quiet={**QUIET, "heartbeat_seconds": 1.0}))
    children = []
    for run_id in ids:
        workdir = tmp_path / run_id
        workdir.mkdir()
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", code, str(steps), str(pause), run_id],
                cwd=workdir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return children


def _wait_until_begun(server: ServerProcess, key: str, ids: list[str], children: list[Any]) -> None:
    """Every logger has created its run (on a busy machine, start-up alone can take seconds)."""
    headers = {"Authorization": f"Bearer {key}"}
    deadline = time.monotonic() + 60
    for run_id in ids:
        url = f"{server.base_url}/api/v1/runs/alice/faults/{run_id}"
        while httpx.get(url, headers=headers).status_code != 200:
            assert time.monotonic() < deadline, f"{run_id} never began"
            assert all(child.poll() is None for child in children), "a logger exited before its run began"
            time.sleep(0.1)


def _wait_for_loggers(children: list[Any]) -> list[dict[str, float]]:
    results = []
    for child in children:
        out, err = child.communicate(timeout=150)
        assert child.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _assert_exactly_once(store_url: str, run_id: str, steps: int) -> None:
    with open_store(store_url) as store:
        view = store.require_run("alice", "faults", run_id)
        assert view.state == "finished" and view.last_step == steps - 1
        got, values = store.read_series(view.incarnation_id, "x")
        assert len(got) == steps, f"{run_id}: {len(got)} rows for {steps} steps"
        assert np.array_equal(got, np.arange(steps)) and np.array_equal(values, np.arange(steps, dtype=float))
        names = store.read_objects(view.incarnation_id, "name")
        assert [s for s, _ in names] == list(range(steps)) and names[-1][1] == f"n{steps - 1}"


def test_server_sigkill_and_restart_while_three_runs_log(pg_server: tuple[ServerProcess, str], tmp_path: Path) -> None:
    server, key = pg_server
    ids, steps = ["kill-a", "kill-b", "kill-c"], 1500
    children = _start_loggers(server, key, tmp_path, ids, steps, pause=0.004)
    _wait_until_begun(server, key, ids, children)
    time.sleep(1.0)
    server.kill()  # mid-batch: whatever was not committed is resent, whatever was is skipped
    time.sleep(2.0)
    server.start()
    time.sleep(1.5)
    server.kill()
    server.start()
    results = _wait_for_loggers(children)
    for run_id in ids:
        _assert_exactly_once(server.store_url, run_id, steps)
    print("max log() latency per run while the server was killed:", [r["max_log_seconds"] for r in results])


def test_network_drop_never_stalls_training(sqlite_server: tuple[ServerProcess, str], tmp_path: Path) -> None:
    server, key = sqlite_server
    steps, pause = 5000, 0.007  # about 35 s of training
    children = _start_loggers(server, key, tmp_path, ["drop"], steps, pause)
    time.sleep(2.0)
    server.freeze()  # packets go unanswered, as when the network drops
    time.sleep(30.0)
    still_running = children[0].poll() is None
    server.thaw()
    results = _wait_for_loggers(children)
    worst = results[0]["max_log_seconds"]
    print(f"max log() latency during a 30 s network drop: {worst * 1000:.2f} ms")
    assert still_running, "training finished before the drop ended; make the run longer"
    # A log() call is a local write; the network is in the writer process. A stall would last the
    # whole 30 s drop; the bound leaves room for a busy machine's scheduling, not for waiting.
    assert worst < 1.0
    _assert_exactly_once(server.store_url, "drop", steps)


# -- login and sync -------------------------------------------------------------------------------------
def test_login_verifies_and_stores_the_key_privately(
    sqlite_server: tuple[ServerProcess, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from branchline.cli.main import cli
    from branchline.settings import load_settings_file, settings_file_path

    server, key = sqlite_server
    runner = CliRunner()
    wrong = runner.invoke(cli, ["login", server.base_url, "--key", "bl_" + "0" * 44])
    assert wrong.exit_code != 0 and "did not accept" in wrong.output
    assert not settings_file_path().exists()
    ok = runner.invoke(cli, ["login", server.base_url, "--key", key])
    assert ok.exit_code == 0, ok.output
    assert key not in ok.output
    assert load_settings_file() == {"base_url": server.base_url, "api_key": key}
    assert settings_file_path().stat().st_mode & 0o777 == 0o600


def test_offline_run_syncs_to_the_server(
    sqlite_server: tuple[ServerProcess, str], monkeypatch: pytest.MonkeyPatch, quiet: dict[str, Any]
) -> None:
    from click.testing import CliRunner

    from branchline.cli.main import cli

    server, key = sqlite_server
    run = branchline.init(project="later", entity="alice", mode="offline", settings=quiet)
    for step in range(50):
        run.log({"loss": float(step)})
    run.finish()
    for name, value in _remote_env(server, key).items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["sync"])
    assert result.exit_code == 0, result.output
    assert "alice/later/" in result.output
    with branchline.Api() as api:
        synced = api.run(f"alice/later/{run.id}")
        steps, _ = api.backend.read_series(synced.incarnation_id, "loss")
        assert len(steps) == 50 and synced.state == "finished"


def test_finish_with_the_server_down_says_what_is_unsent_and_sync_sends_it(
    sqlite_server: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    server, key = sqlite_server
    code = f"""
        import time, branchline
        run = branchline.init(project="late", id="late-run", settings={{**{QUIET!r}, "quiet": False}})
        for step in range(200):
            run.log({{"x": float(step)}})
        print("logged", flush=True)
        time.sleep(1.5)  # the server is killed now
        for step in range(200, 400):
            run.log({{"x": float(step)}})
        began = time.monotonic()
        run.finish()
        print("finish took", time.monotonic() - began, flush=True)
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    env.update(_remote_env(server, key), BRANCHLINE_CONFIG_DIR=str(tmp_path / ".config"), BRANCHLINE_FINISH_TIMEOUT="3")
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert child.stdout is not None
    while (line := child.stdout.readline()) and line.strip() != "logged":
        pass
    time.sleep(0.5)
    server.kill()
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0, out
    print(out)
    took = float(out.split("finish took")[1].split()[0])
    assert took < 15, out  # bounded: finish_timeout plus one retry round, not forever
    assert "records are not stored yet" in out and "branchline sync" in out, out

    server.start()
    from click.testing import CliRunner

    from branchline.cli.main import cli

    result = CliRunner().invoke(
        cli, ["sync", str(tmp_path / "branchline")], env={**_remote_env(server, key), "BRANCHLINE_FINISH_TIMEOUT": ""}
    )
    assert result.exit_code == 0, result.output
    with open_store(server.store_url) as store:
        view = store.require_run("alice", "late", "late-run")
        steps, _ = store.read_series(view.incarnation_id, "x")
        assert np.array_equal(steps, np.arange(400)) and view.state == "finished"
