"""The wandb client's clock across a resume. The client starts its timer at the `_wandb.runtime`
the server answers (whole seconds) and sends `_runtime` = that offset + its own elapsed time. The
store keeps `_runtime` on the wall clock, as our SDK does: the time between a finish and a resume is
a pause that Runtime includes and Duration (Runtime less the pauses) does not. So the server
answers a resuming client with the Runtime including the pause so far, and a wandb-client run
resumed after a pause has Runtime >= Duration, both right, and a `_runtime` that never goes back.

In process, through the GraphQL and file_stream routes, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from branchline.server import ServerSettings, create_app
from branchline.store import open_store
from tests import store_factory

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
any_store_url = store_factory.any_store_url
PAUSE = 1.5
WHERE = {"entity": "team", "project": "proj"}

_UPSERT = """mutation UpsertBucket($name: String, $project: String, $entity: String, $config: JSONString) {
  upsertBucket(input: {name: $name, modelName: $project, entityName: $entity, config: $config}) {
    bucket { id name summaryMetrics historyTail } inserted
  }
}"""
_RESUME_STATUS = """query RunResumeStatus($project: String, $entity: String, $name: String!) {
  model(name: $project, entityName: $entity) { bucket(name: $name) { id summaryMetrics historyTail } }
}"""
_HISTORY = """query RunFullHistory($entity: String!, $project: String!, $name: String!) {
  project(name: $project, entityName: $entity) { run(name: $name) { history(samples: 100) } }
}"""


@pytest.fixture
def client(any_store_url: str, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(ServerSettings(store_url=any_store_url, ui_dist=None, files_dir=tmp_path / "files"))
    with TestClient(app) as c:
        yield c


def _gql(client: TestClient, query: str, **variables: Any) -> Any:
    name = query.split()[1].split("(")[0]
    got = client.post("/graphql", json={"query": query, "operationName": name, "variables": variables})
    assert got.status_code == 200 and not got.json().get("errors"), got.text
    return got.json()["data"]


def _session(client: TestClient, run_id: str, offset: float, steps: range, line: int) -> None:
    """What the client sends: history rows with `_runtime` = its timer offset + elapsed, then the exit."""
    started = time.monotonic()
    rows = []
    for step in steps:
        elapsed = time.monotonic() - started + 0.01 * (step + 1)
        rows.append(json.dumps({"_step": step, "_runtime": offset + elapsed, "_timestamp": time.time(), "loss": 1.0}))
    stream = f"/files/team/proj/{run_id}/file_stream"
    body = {"files": {"wandb-history.jsonl": {"offset": line, "content": rows}}}
    assert client.post(stream, json=body).status_code == 200
    assert client.post(stream, json={"complete": True, "exitcode": 0}).status_code == 200


def _clock(bucket: dict[str, Any]) -> int:
    clock = json.loads(bucket["summaryMetrics"])["_wandb"]["runtime"]
    assert isinstance(clock, int)  # the client reads whole seconds
    return clock


def test_a_wandb_client_run_resumed_after_a_pause_keeps_the_wall_clock(client: TestClient, any_store_url: str) -> None:
    first = _gql(client, _UPSERT, **WHERE, name="r1", config="{}")["upsertBucket"]
    assert first["inserted"] is True and _clock(first["bucket"]) == 0
    _session(client, "r1", 0.0, range(3), 0)
    with open_store(any_store_url) as store:
        before = store.require_run("team", "proj", "r1")
    assert before.state == "finished" and before.paused == 0.0

    time.sleep(PAUSE)
    # The client asks where the run left off: the Runtime, the pause so far included.
    status = _gql(client, _RESUME_STATUS, **WHERE, name="r1")["model"]["bucket"]
    offset = _clock(status)
    assert offset >= int(before.runtime + PAUSE) >= 1
    assert json.loads(json.loads(status["historyTail"])[-1])["_runtime"] >= before.runtime + PAUSE
    resumed = _gql(client, _UPSERT, **WHERE, name="r1", config="{}")["upsertBucket"]
    assert resumed["inserted"] is False and _clock(resumed["bucket"]) >= offset
    _session(client, "r1", float(offset), range(3, 6), 3)

    with open_store(any_store_url) as store:
        after = store.require_run("team", "proj", "r1")
    assert after.state == "finished" and after.last_step == 5
    assert after.paused >= PAUSE
    assert after.runtime >= after.duration and after.runtime >= before.runtime + PAUSE
    assert after.duration == pytest.approx(after.runtime - after.paused)
    # Active time: two short sessions (the client's whole-second offset may cost up to a second).
    assert 0.0 <= after.duration < before.runtime + 1.5
    assert after.summary["_runtime"] == pytest.approx(after.runtime)
    # `_runtime` never goes back at the resume: the new rows continue from the wall clock.
    rows = [json.loads(r) for r in _gql(client, _HISTORY, **WHERE, name="r1")["project"]["run"]["history"]]
    runtimes = [r["_runtime"] for r in rows]
    assert [r["_step"] for r in rows] == list(range(6)) and runtimes == sorted(runtimes)
    assert min(runtimes[3:]) >= before.runtime + PAUSE - 1.0
