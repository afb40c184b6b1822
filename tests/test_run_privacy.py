"""Privacy set on a run, as the W&B docs describe: a private run is readable by the members of its
entity only, even in a public project. To anyone else it does not exist: left out of lists and
counts, and every route that reads it (REST, the `Api()` wire, data, files, artifacts, series) is a
404. The store keeps the flag on both backends; members set it through the run edit route.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from branchline.schema_revision import SCHEMA_REVISION
from branchline.server import ServerSettings, create_app
from branchline.store import Store, open_store
from branchline.store.engine import make_engine, upgrade
from tests import store_factory
from tests.store_factory import add_run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
any_store_url = store_factory.any_store_url


# -- the store, on SQLite and PostgreSQL ----------------------------------------------------------------
@pytest.fixture
def store(any_store_url: str, tmp_path: Path) -> Iterator[Store]:
    s = open_store(any_store_url, files_dir=tmp_path / "files")
    yield s
    s.close()


def test_the_store_keeps_a_runs_privacy_and_filters_on_it(store: Store) -> None:
    shown = add_run(store, entity="t", project="p", run_id="shown", history=[(0, {"loss": 1.0})])
    add_run(store, entity="t", project="p", run_id="hidden", history=[(0, {"loss": 2.0})])
    assert shown.private is False
    store.update_run(store.require_run("t", "p", "hidden"), private=True)
    hidden = store.require_run("t", "p", "hidden")
    assert hidden.private is True
    inc = store.get_incarnation(hidden.incarnation_id)
    assert inc is not None and inc.private is True
    assert [r.run_id for r in store.list_runs("t", "p", filters={"private": True})] == ["hidden"]
    assert [r.run_id for r in store.list_runs("t", "p", filters={"private": {"$ne": True}})] == ["shown"]
    assert store.count_runs("t", "p", filters={"$and": [{"private": False}, {"summary_metrics.loss": 1.0}]}) == 1
    store.update_run(hidden, private=False)
    assert store.require_run("t", "p", "hidden").private is False


# -- the server ---------------------------------------------------------------------------------------
@dataclass
class World:
    client: TestClient
    keys: dict[str, str]
    hidden: str  # incarnation id of the private run
    shown: str


def _auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'server' / 'store.db'}"
    setup = open_store(url)
    keys: dict[str, str] = {}
    for user in ("alice", "bob"):
        setup.create_user(user)
        keys[user] = setup.create_api_key(user)[1]
    setup.create_team("team-a")
    setup.add_team_member("team-a", "alice")
    incs: dict[str, str] = {}
    for run_id in ("shown", "hidden"):
        view = add_run(
            setup,
            entity="team-a",
            project="open",
            run_id=run_id,
            history=[(s, {"loss": 1.0 / (s + 1)}) for s in range(5)],
            console=["hello"],
            files=[("output.log", 5)],
        )
        on_disk = tmp_path / "server" / "files" / view.incarnation_id / "output.log"
        on_disk.parent.mkdir(parents=True)
        on_disk.write_text("hello")
        incs[run_id] = view.incarnation_id
    setup.set_project_public("team-a", "open", True)
    setup.close()
    app = create_app(ServerSettings(store_url=url, ui_dist=None, auth_required=True))
    with TestClient(app) as client:
        world = World(client, keys, incs["hidden"], incs["shown"])
        # alice (a member) makes the run private through the run edit route
        done = client.patch("/api/v1/runs/team-a/open/hidden", json={"private": True}, headers=_auth(keys["alice"]))
        assert done.status_code == 200 and done.json()["private"] is True
        yield world


def _reads(w: World, inc: str, run_id: str) -> list[tuple[str, str, Any]]:
    run = f"/api/v1/runs/team-a/open/{run_id}"
    return [
        ("get", run, None),
        ("get", f"{run}/incarnations/{inc}", None),
        ("get", f"{run}/keys", None),
        ("get", f"{run}/series?keys=loss", None),
        ("get", f"{run}/logs", None),
        ("get", f"{run}/files", None),
        ("get", f"{run}/files/output.log", None),
        ("get", f"{run}/alerts", None),
        ("get", f"{run}/artifacts", None),
        ("post", "/api/v1/series", {"incarnations": [inc], "keys": ["loss"]}),
        ("post", "/api/v1/series/keys", {"incarnations": [inc]}),
        ("post", "/api/v1/series/groups", {"groups": [{"name": "g", "incarnations": [inc]}], "keys": ["loss"]}),
        ("get", f"/api/v1/store/runs/team-a/open/{run_id}", None),
        ("get", f"/api/v1/store/incarnations/{inc}", None),
        ("get", f"/api/v1/store/incarnations/{inc}/keys", None),
        ("get", f"/api/v1/store/incarnations/{inc}/series?key=loss", None),
        ("get", f"/api/v1/store/incarnations/{inc}/console", None),
        ("get", f"/api/v1/store/incarnations/{inc}/files", None),
        ("get", f"/api/v1/artifacts/files/{inc}", None),
        ("get", f"/api/v1/artifacts/incarnations/{inc}?role=logged", None),
        ("get", f"/api/v1/media/files/{inc}/output.log", None),
    ]


@pytest.mark.parametrize("who", ["bob", None], ids=["non-member", "anonymous"])
def test_a_private_run_is_a_404_to_readers_outside_its_entity(world: World, who: str | None) -> None:
    headers = _auth(world.keys[who] if who else None)
    for method, url, body in _reads(world, world.hidden, "hidden"):
        got = world.client.request(method, url, json=body, headers=headers)
        assert got.status_code == 404, (method, url, got.status_code, got.text)
        assert "hidden" not in got.text or "not found" in got.text.lower()
    # The public run of the same project stays readable (the requests above are well-formed).
    for method, url, body in _reads(world, world.shown, "shown"):
        got = world.client.request(method, url, json=body, headers=headers)
        assert got.status_code == 200, (method, url, got.status_code, got.text)


def test_a_private_run_is_left_out_of_lists_and_counts_for_others(world: World) -> None:
    for headers in (_auth(world.keys["bob"]), {}):
        listed = world.client.get("/api/v1/runs/team-a/open", headers=headers).json()
        assert [r["run_id"] for r in listed["runs"]] == ["shown"] and listed["total"] == 1
        filtered = world.client.get(
            "/api/v1/runs/team-a/open", params={"filters": '{"private": true}'}, headers=headers
        ).json()
        assert filtered["runs"] == [] and filtered["total"] == 0
        query = world.client.post("/api/v1/store/runs/team-a/open/query", json={"filters": None}, headers=headers)
        assert [r["run_id"] for r in msgpack.unpackb(query.content)] == ["shown"]
        count = world.client.post("/api/v1/store/runs/team-a/open/count", json={"filters": None}, headers=headers)
        assert msgpack.unpackb(count.content) == {"count": 1}


def test_members_read_a_private_run_and_only_they_change_its_privacy(world: World) -> None:
    alice = _auth(world.keys["alice"])
    for method, url, body in _reads(world, world.hidden, "hidden"):
        got = world.client.request(method, url, json=body, headers=alice)
        assert got.status_code == 200, (method, url, got.status_code, got.text)
    listed = world.client.get("/api/v1/runs/team-a/open", headers=alice).json()
    assert sorted(r["run_id"] for r in listed["runs"]) == ["hidden", "shown"]
    assert {r["run_id"]: r["private"] for r in listed["runs"]} == {"hidden": True, "shown": False}

    refused = world.client.patch(
        "/api/v1/runs/team-a/open/shown", json={"private": True}, headers=_auth(world.keys["bob"])
    )
    assert refused.status_code == 403
    bad = world.client.patch("/api/v1/runs/team-a/open/shown", json={"private": "maybe"}, headers=alice)
    assert bad.status_code == 422 and "private" in bad.text

    public_again = world.client.patch("/api/v1/runs/team-a/open/hidden", json={"private": False}, headers=alice)
    assert public_again.status_code == 200 and public_again.json()["private"] is False
    assert world.client.get("/api/v1/runs/team-a/open/hidden", headers=_auth(world.keys["bob"])).status_code == 200


# -- the migration ------------------------------------------------------------------------------------
@pytest.mark.parametrize("store_backend", store_factory.BACKENDS)
def test_upgrade_to_0006_keeps_stored_runs_visible_with_no_pause(store_backend: str, tmp_path: Path) -> None:
    with store_factory.fresh_url(store_backend, tmp_path) as url:
        assert upgrade(url, "0005_workspaces") == "0005_workspaces"
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO projects (entity, name, created_at, public) VALUES ('e', 'p', 1, true)"))
                conn.execute(
                    text(
                        "INSERT INTO runs (project_id, run_id, current_incarnation, name, notes, tags, run_group,"
                        " job_type, host, username, created_at, updated_at, stop_requested)"
                        " SELECT id, 'old', 'inc0', 'old-run', '', '[]', '', '', '', '', 1, 1, false FROM projects"
                    )
                )
                conn.execute(
                    text(
                        "INSERT INTO incarnations (id, run_pk, ordinal, archived, state, created_at, started_at,"
                        " heartbeat_at, finished_at, host, starting_step, last_step, runtime, config, summary,"
                        " metrics, run_metadata) SELECT 'inc0', pk, 1, false, 'finished', 1, 1, 50, 50, '', 0, 3,"
                        " 8.5, '{}', '{}', '{}', '{}' FROM runs"
                    )
                )
        finally:
            engine.dispose()
        assert upgrade(url) == SCHEMA_REVISION
        with open_store(url) as upgraded:
            view = upgraded.require_run("e", "p", "old")
            assert (view.private, view.paused, view.runtime, view.duration) == (False, 0.0, 8.5, 8.5)
            upgraded.update_run(view, private=True)
            assert upgraded.require_run("e", "p", "old").private is True


# -- project pages: counts and column keys ----------------------------------------------------------
def test_the_stores_project_counts_and_keys_leave_private_runs_out_on_request(store: Store) -> None:
    add_run(store, entity="t", project="p", run_id="shown", config={"lr": 1}, summary={"acc": 1.0})
    add_run(store, entity="t", project="p", run_id="hidden", state="failed", config={"secret_lr": 2})
    store.update_run(store.require_run("t", "p", "hidden"), private=True)
    # Members (and the local user) see every run; others see the project without the private one.
    assert store.state_counts("t", "p") == {"finished": 1, "failed": 1}
    assert store.state_counts("t", "p", include_private=False) == {"finished": 1}
    assert "secret_lr" in store.project_columns("t", "p")["config"]
    assert store.project_columns("t", "p", include_private=False) == {"config": ["lr"], "summary": ["acc"]}
    (row,) = store.project_activity("t")
    assert row["run_count"] == 2
    (row,) = store.project_activity("t", private_runs_of=frozenset())
    assert row["run_count"] == 1
    (row,) = store.project_activity("t", private_runs_of=frozenset({"t"}))
    assert row["run_count"] == 2


def _world_with_keys(w: World) -> None:
    """Give the private run keys nobody else has, so a leak of them shows."""
    with open_store(_world_url(w)) as s:
        hidden = s.require_run("team-a", "open", "hidden")
        s.update_run(hidden, config={"secret_lr": 1}, summary={"secret_acc": 0.5})


def _world_url(w: World) -> str:
    return str(w.client.app.state.settings.store_url)  # type: ignore[attr-defined]


@pytest.mark.parametrize("who", ["bob", None], ids=["non-member", "anonymous"])
def test_project_pages_count_and_list_keys_of_visible_runs_only(world: World, who: str | None) -> None:
    _world_with_keys(world)
    headers = _auth(world.keys[who] if who else None)
    detail = world.client.get("/api/v1/projects/team-a/open", headers=headers).json()
    assert detail["run_count"] == 1 and sum(detail["state_counts"].values()) == 1
    keys = [*detail["columns"]["config"], *detail["columns"]["summary"]]
    assert not [k for k in keys if k.startswith("secret")], keys
    (listed,) = world.client.get("/api/v1/projects", params={"entity": "team-a"}, headers=headers).json()["projects"]
    assert listed["run_count"] == 1
    # The SDK's project list (Api().projects) counts the same way.
    (row,) = msgpack.unpackb(world.client.get("/api/v1/store/projects", headers=headers).content)
    assert row["run_count"] == 1

    alice = _auth(world.keys["alice"])
    detail = world.client.get("/api/v1/projects/team-a/open", headers=alice).json()
    assert detail["run_count"] == 2 and sum(detail["state_counts"].values()) == 2
    assert "secret_lr" in detail["columns"]["config"] and "secret_acc" in detail["columns"]["summary"]
    (row,) = msgpack.unpackb(world.client.get("/api/v1/store/projects", headers=alice).content)
    assert row["run_count"] == 2


# -- the W&B protocol's read side (`wandb.Api()`) ---------------------------------------------------------
_RUNS = """query Runs($entity: String!, $project: String!, $filters: JSONString) {
  project(name: $project, entityName: $entity) {
    runCount(filters: $filters)
    runs(filters: $filters, first: 50) { edges { node { name } } }
  }
}"""
_RUN = """query Run($entity: String!, $project: String!, $name: String!) {
  project(name: $project, entityName: $entity) {
    run(name: $name) {
      name summaryMetrics
      history(samples: 10)
      files { edges { node { name url } } }
      outputArtifacts { totalCount edges { node { id } } }
    }
  }
}"""
_RUN_ARTIFACTS = """query RunOutputArtifacts($entity: String!, $project: String!, $runName: String!) {
  project(name: $project, entityName: $entity) {
    run(name: $runName) { outputArtifacts { totalCount edges { node { id } } } }
  }
}"""
_CREATED_BY = """query ArtifactCreatedBy($id: ID!) {
  artifact(id: $id) { id createdBy { ... on Run { name } } usedBy { edges { node { name } } } }
}"""
_RESUME_STATUS = """query RunResumeStatus($project: String, $entity: String, $name: String!) {
  model(name: $project, entityName: $entity) { bucket(name: $name) { id name summaryMetrics } }
}"""


def _gql(w: World, key: str | None, query: str, **variables: Any) -> Any:
    name = query.split()[1].split("(")[0]
    got = w.client.post(
        "/graphql", json={"query": query, "operationName": name, "variables": variables}, headers=_auth(key)
    )
    assert got.status_code == 200, got.text
    body = got.json()
    assert not body.get("errors"), body
    return body["data"]


def _hidden_logs_an_artifact(w: World) -> str:
    from branchline.store.artifacts import EntryRow

    with open_store(_world_url(w)) as s:
        row, _ = s.commit_artifact(
            entity="team-a",
            project="open",
            name="weights",
            type="model",
            digest="d" * 32,
            entries=[EntryRow("w.bin", "a" * 64, 10)],
            description=None,
            metadata={},
            aliases=[],
            incarnation_id=w.hidden,
            role="logged",
        )
        s.use_artifact(row.id, w.hidden)
        return row.id


@pytest.mark.parametrize("who", ["bob", None], ids=["non-member", "anonymous"])
def test_wandb_api_reads_leave_a_private_run_out_for_readers_outside_its_entity(world: World, who: str | None) -> None:
    version = _hidden_logs_an_artifact(world)
    key = world.keys[who] if who else None
    where = {"entity": "team-a", "project": "open"}
    runs = _gql(world, key, _RUNS, **where, filters="{}")["project"]
    assert runs["runCount"] == 1 and [e["node"]["name"] for e in runs["runs"]["edges"]] == ["shown"]
    # A filter naming the private run finds nothing, as if it did not exist.
    named = _gql(world, key, _RUNS, **where, filters='{"name": "hidden"}')["project"]
    assert named["runCount"] == 0 and named["runs"]["edges"] == []
    assert _gql(world, key, _RUN, **where, name="hidden")["project"]["run"] is None
    assert _gql(world, key, _RUN_ARTIFACTS, **where, runName="hidden")["project"]["run"] is None
    assert _gql(world, key, _RESUME_STATUS, **where, name="hidden")["model"]["bucket"] is None
    # The artifact itself belongs to the (public) project; who logged and used it is not shown.
    artifact = _gql(world, key, _CREATED_BY, id=version)["artifact"]
    assert artifact["id"] == version and artifact["createdBy"] is None and artifact["usedBy"]["edges"] == []
    shown = _gql(world, key, _RUN, **where, name="shown")["project"]["run"]
    assert shown["name"] == "shown" and len(shown["history"]) == 5 and shown["files"]["edges"]


def test_wandb_api_reads_show_a_private_run_to_its_entitys_members(world: World) -> None:
    version = _hidden_logs_an_artifact(world)
    key = world.keys["alice"]
    where = {"entity": "team-a", "project": "open"}
    runs = _gql(world, key, _RUNS, **where, filters="{}")["project"]
    assert runs["runCount"] == 2 and sorted(e["node"]["name"] for e in runs["runs"]["edges"]) == ["hidden", "shown"]
    run = _gql(world, key, _RUN, **where, name="hidden")["project"]["run"]
    assert run["name"] == "hidden" and len(run["history"]) == 5
    assert [e["node"]["name"] for e in run["files"]["edges"]] == ["output.log"]
    assert [e["node"]["id"] for e in run["outputArtifacts"]["edges"]] == [version]
    assert _gql(world, key, _RUN_ARTIFACTS, **where, runName="hidden")["project"]["run"] is not None
    artifact = _gql(world, key, _CREATED_BY, id=version)["artifact"]
    assert artifact["createdBy"] == {"name": "hidden"} and artifact["usedBy"]["edges"] == [{"node": {"name": "hidden"}}]
