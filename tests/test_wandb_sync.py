"""Offline wandb runs, uploaded later with `wandb sync`, land in branchline with their lineage.

The real client logs with `WANDB_MODE=offline` (nothing reaches the server), then `wandb sync`
replays each run's `.wandb` file over the same protocol as a live run: a plain run, a fork of it
(`fork_from`) and a rewind of it (`resume_from`), uploaded together, as users import the offline
runs they already have. Each scenario asserts on what branchline's own `Api` reads back over the
server: history rows per key, config, summary, state, the fork's source and the rewind's archived
incarnation.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest.mock import ANY

import httpx
import pytest

from branchline.api import Api
from tests.test_wandb_client import OLD_WANDB_PYTHON, WANDB_PYTHON, Server, _need_client, _serve

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _need_client()
    workdir = tmp_path_factory.mktemp("wandb-sync-server")
    with _serve(f"sqlite:///{workdir / 'store.db'}", workdir, []) as found:
        yield found


@pytest.fixture(scope="module")
def api(server: Server) -> Iterator[Api]:
    with Api(overrides={"base_url": server.url}, api_key=server.key) as found:
        yield found


def _env(server: Server, cwd: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "BRANCHLINE_"))}
    env.update(
        WANDB_BASE_URL=server.url,
        WANDB_API_KEY=server.key,
        WANDB_SILENT="true",
        WANDB_DIR=str(cwd),
        WANDB_CONFIG_DIR=str(cwd / ".wandb-config"),
        WANDB_CACHE_DIR=str(cwd / ".wandb-cache"),
        PYTHONUNBUFFERED="1",
    )
    return env


def _start(server: Server, cwd: Path, command: list[str], *, offline: bool = False) -> subprocess.Popen[str]:
    env = _env(server, cwd)
    if offline:
        env["WANDB_MODE"] = "offline"
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _offline(server: Server, cwd: Path, name: str, script: str, python: Path = WANDB_PYTHON) -> subprocess.Popen[str]:
    cwd.mkdir(exist_ok=True)
    (cwd / f"{name}.py").write_text(textwrap.dedent(script))
    return _start(server, cwd, [str(python), f"{name}.py"], offline=True)


def _wait(server: Server, *procs: subprocess.Popen[str]) -> list[str]:
    outputs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, out + server.process.log.read_text()[-3000:]
        outputs.append(out)
    return outputs


PLAIN = """
import wandb
run = wandb.init(project="offline", id="{run_id}", config={{"lr": 0.1, "layers": 2}}, notes="made offline")
for i in range(6):
    print(f"epoch {{i}}")
    run.log({{"loss": 1.0 / (i + 1), "acc": i / 10}})
run.summary["best"] = 7
run.finish()
"""

FORK = """
import wandb
run = wandb.init(project="offline", id="child", fork_from="plain?_step=2", config={"lr": 0.2})
for i in range(3, 6):
    run.log({"loss": 100.0 + i})
run.finish()
"""

REWIND = """
import wandb
run = wandb.init(project="offline", id="plain", resume_from="plain?_step=3")
for i in range(4, 7):
    run.log({"loss": 200.0 + i})
run.finish()
"""


def test_offline_runs_sync_with_their_data_and_lineage(server: Server, api: Api, tmp_path: Path) -> None:
    lineage, solo, older = tmp_path / "lineage", tmp_path / "solo", tmp_path / "older"
    # The plain run and its fork are logged at once; the rewind after them (sync orders a run's
    # files by their start time). A lone run and one from the older client log meanwhile.
    first = [
        _offline(server, lineage, "plain", PLAIN.format(run_id="plain")),
        _offline(server, lineage, "fork", FORK),
        _offline(server, solo, "solo", PLAIN.format(run_id="solo")),
    ]
    old = [_offline(server, older, "old", PLAIN.format(run_id="older"), OLD_WANDB_PYTHON)]
    _wait(server, *first)
    _wait(server, _offline(server, lineage, "rewind", REWIND))
    assert server.store.get_run("alice", "offline", "plain") is None  # offline: nothing was sent yet

    (solo_dir,) = (solo / "wandb").glob("offline-run-*-solo")
    syncs = [
        _start(server, lineage, [str(WANDB_PYTHON.parent / "wandb"), "sync", "--yes"]),  # every unsynced run
        _start(server, solo, [str(WANDB_PYTHON.parent / "wandb"), "sync", str(solo_dir)]),  # one run directory
    ]
    if OLD_WANDB_PYTHON.exists():
        _wait(server, *old)
        syncs.append(_start(server, older, [str(OLD_WANDB_PYTHON.parent / "wandb"), "sync", "--sync-all"]))
    _wait(server, *syncs)

    api.flush()
    plain = api.run("alice/offline/plain")
    assert (plain.state, plain.config) == ("finished", {"lr": 0.1, "layers": 2})
    (archived,) = plain.archived  # the rewind archived the incarnation logged first
    assert plain.forked_from is not None and plain.forked_from["kind"] == "rewind"
    assert plain.forked_from["step"] == 3 and plain.forked_from["incarnation_id"] == archived.incarnation_id
    steps, loss = plain.metric("loss")
    assert steps.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert loss.tolist() == [1.0, 0.5, 1 / 3, 0.25, 204.0, 205.0, 206.0]
    assert plain.summary_metrics["loss"] == 206.0

    assert (archived.state, archived.description) == ("finished", "made offline")
    assert archived.metric("loss")[0].tolist() == [0, 1, 2, 3, 4, 5]
    assert archived.metric("acc")[1].tolist() == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert archived.summary_metrics["best"] == 7 and archived.summary_metrics["loss"] == 1 / 6
    assert [line["text"] for line in archived.logs()] == [f"epoch {i}" for i in range(6)]
    assert archived.history(stream="system", pandas=False)  # system metrics recorded offline

    child = api.run("alice/offline/child")
    assert child.state == "finished" and child.config["lr"] == 0.2
    assert child.forked_from is not None and (child.forked_from["kind"], child.forked_from["step"]) == ("fork", 2)
    assert child.forked_from["run_id"] == "plain" and child.forked_from["incarnation_id"] == archived.incarnation_id
    steps, loss = child.metric("loss")
    assert steps.tolist() == [0, 1, 2, 3, 4, 5] and loss.tolist() == [1.0, 0.5, 1 / 3, 103.0, 104.0, 105.0]
    assert child.summary_metrics["loss"] == 105.0

    for run_id in ("solo", "older") if OLD_WANDB_PYTHON.exists() else ("solo",):
        run = api.run(f"alice/offline/{run_id}")
        assert (run.state, run.config, run.forked_from) == ("finished", {"lr": 0.1, "layers": 2}, None)
        assert run.metric("acc")[0].tolist() == [0, 1, 2, 3, 4, 5]
        assert run.summary_metrics["best"] == 7
        assert [line["text"] for line in run.logs()] == [f"epoch {i}" for i in range(6)]
    assert list((solo_dir).glob("*.synced")), "wandb sync marks the directory it uploaded"


UPSERT = """mutation UpsertBucket($name: String, $project: String, $config: JSONString) {
  upsertBucket(input: {name: $name, modelName: $project, config: $config}) { bucket { id name } inserted } }"""


def _upsert(server: Server, name: str, config: dict[str, object]) -> httpx.Response:
    variables = {"name": name, "project": "order", "config": json.dumps(config)}
    body = {"query": UPSERT, "operationName": "UpsertBucket", "variables": variables}
    return httpx.post(server.url + "/graphql", json=body, headers=server.headers(), timeout=60)


def test_a_fork_that_arrives_before_its_parent_waits_for_it(server: Server, api: Api) -> None:
    """`wandb sync` uploads runs in parallel: a fork may arrive just before the run it forks from."""
    branch = {"_wandb": {"value": {"branch_point": {"run_id": "parent", "step": 1}}}}
    with ThreadPoolExecutor(1) as pool:
        fork = pool.submit(_upsert, server, "early-fork", branch)
        time.sleep(1.0)
        assert not fork.done()  # waiting for its parent, not refused
        assert _upsert(server, "parent", {"lr": {"value": 0.5}}).json()["data"]["upsertBucket"]["inserted"]
        answer = fork.result(timeout=30).json()
    assert answer["data"]["upsertBucket"] == {"bucket": {"id": ANY, "name": "early-fork"}, "inserted": True}
    child = api.run("alice/order/early-fork")
    assert child.forked_from is not None and (child.forked_from["run_id"], child.forked_from["step"]) == ("parent", 1)
    assert child.config == {"lr": 0.5}  # inherited from the parent, which existed by then
