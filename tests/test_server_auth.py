"""Tenancy on the server: every endpoint of the OpenAPI schema is tried with someone else's key.

Teams `team-a` (alice) and `team-b` (bob) each have a private project; `team-a/open` is public.
Bob must not read, write, list, stop or delete anything of team-a's private project through any
endpoint; no key, a wrong key and a revoked key are 401; the public project is readable by anyone
and writable by members only. Positive controls (alice succeeds) show the requests are well-formed.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from branchline.artifacts.blobstores import LocalBlobStore
from branchline.server import ServerSettings, create_app
from branchline.store import Store, open_store
from branchline.store.artifacts import EntryRow
from tests.store_factory import add_run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@dataclass
class World:
    client: TestClient
    store: Store
    keys: dict[str, str]
    ids: dict[str, dict[str, str]]  # project -> {"run_id", "incarnation_id", "session_id"}


def _auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def _session_of(store: Store, incarnation_id: str) -> str:
    from sqlalchemy import select

    from branchline.store.schema import writer_sessions

    with store.engine.connect() as conn:
        return str(
            conn.execute(
                select(writer_sessions.c.id).where(writer_sessions.c.incarnation_id == incarnation_id)
            ).scalar()
        )


#: The sha256 of no bytes: a blob every project's artifact holds, so an empty upload body is valid.
EMPTY_SHA = hashlib.sha256(b"").hexdigest()


def _artifact_in(store: Store, server_dir: Path, entity: str, project: str, incarnation_id: str) -> str:
    """Log version v0 of artifact `corpus` (one empty file, its blob stored) from the run."""
    empty = server_dir / "empty"
    empty.write_bytes(b"")
    LocalBlobStore(server_dir / "blobs").put_file(EMPTY_SHA, str(empty))
    row, _ = store.commit_artifact(
        entity=entity,
        project=project,
        name="corpus",
        type="dataset",
        digest="d" * 64,
        entries=[EntryRow("empty.txt", EMPTY_SHA, 0)],
        description=None,
        metadata={},
        aliases=["latest"],
        incarnation_id=incarnation_id,
        role="logged",
    )
    return row.id


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'server' / 'store.db'}"
    setup = open_store(url)
    keys: dict[str, str] = {}
    for user in ("alice", "bob", "carol"):
        setup.create_user(user)
        keys[user] = setup.create_api_key(user)[1]
    setup.create_team("team-a")
    setup.add_team_member("team-a", "alice")
    setup.create_team("team-b")
    setup.add_team_member("team-b", "bob")
    setup.add_team_member("team-b", "carol")
    # carol's key is revoked: a real key that must stop working.
    carol_key_id = setup.list_api_keys("carol")[0].id
    assert setup.revoke_api_key(carol_key_id)
    ids: dict[str, dict[str, str]] = {}
    for entity, project in (("team-a", "secret"), ("team-a", "open"), ("team-b", "mine")):
        view = add_run(
            setup,
            entity=entity,
            project=project,
            run_id=f"{project}-run",
            history=[(s, {"loss": 1.0 / (s + 1), "note": f"s{s}"}) for s in range(20)],
            console=["hello"],
            files=[("output.log", 5)],
            state="running",
            config={"lr": 0.1},
        )
        # The file's bytes live beside the store (ServerSettings.resolved_files_dir).
        on_disk = tmp_path / "server" / "files" / view.incarnation_id / "output.log"
        on_disk.parent.mkdir(parents=True)
        on_disk.write_text("hello")
        ids[project] = {
            "run_id": view.run_id,
            "incarnation_id": view.incarnation_id,
            "session_id": _session_of(setup, view.incarnation_id),
            "version_id": _artifact_in(setup, tmp_path / "server", entity, project, view.incarnation_id),
        }
    setup.set_project_public("team-a", "open", True)
    setup.close()
    app = create_app(ServerSettings(store_url=url, ui_dist=None, auth_required=True))
    with TestClient(app) as client:
        yield World(client, app.state.store, keys, ids)


# -- every endpoint -----------------------------------------------------------------------------------
@dataclass
class Call:
    method: str
    template: str
    url: str
    body: Any


def _bodies(world: World, project: str, entity: str) -> dict[tuple[str, str], Any]:
    inc = world.ids[project]["incarnation_id"]
    return {
        ("post", "/api/v1/runs/begin"): {
            "entity": entity,
            "project": project,
            "run_id": "intruder-" + secrets.token_hex(3),
            "incarnation_id": secrets.token_hex(8),
            "session_id": secrets.token_hex(8),
            "started_at": time.time(),
        },
        ("post", "/api/v1/sessions/{session_id}/records"): {
            "records": [[10_000, 2, 999, time.time(), 1.0, {"loss": 123.0}]]
        },
        ("patch", "/api/v1/runs/{entity}/{project}/{run_id}"): {"name": "renamed-by-someone"},
        ("post", "/api/v1/runs/{entity}/{project}/{run_id}/move"): {"project": "stolen", "entity": "team-b"},
        ("post", "/api/v1/series"): {"incarnations": [inc], "keys": ["loss"]},
        ("post", "/api/v1/series/keys"): {"incarnations": [inc]},
        ("post", "/api/v1/media"): {"incarnations": [inc], "key": "loss"},
        ("post", "/api/v1/series/groups"): {"groups": [{"name": "g", "incarnations": [inc]}], "keys": ["loss"]},
        ("post", "/api/v1/store/runs/{entity}/{project}/query"): {"filters": None},
        ("post", "/api/v1/store/runs/{entity}/{project}/count"): {"filters": None},
        ("patch", "/api/v1/store/incarnations/{incarnation_id}"): {"name": "renamed-by-someone"},
        ("post", "/api/v1/store/incarnations/{incarnation_id}/move"): {"project": "stolen", "entity": "team-b"},
        ("patch", "/api/v1/projects/{entity}/{project}"): {"public": project == "open"},
        ("put", "/api/v1/projects/{entity}/{project}/workspace"): {
            "layout": {"sections": [{"id": "s", "name": "Charts", "panels": [{"id": "p", "keys": ["loss"]}]}]}
        },
        ("post", "/api/v1/artifacts/{entity}/{project}/blobs/missing"): {"digests": [EMPTY_SHA]},
        ("post", "/api/v1/artifacts/{entity}/{project}/commit"): {
            "name": "corpus",
            "type": "dataset",
            "digest": "e" * 64,
            "entries": [{"path": "again.txt", "digest": EMPTY_SHA, "size": 0}],
            "incarnation_id": inc,
        },
        ("post", "/api/v1/artifacts/versions/{version_id}/use"): {"incarnation_id": inc},
        ("put", "/api/v1/artifacts/versions/{version_id}/aliases"): {"aliases": ["latest", "best"]},
        ("patch", "/api/v1/artifacts/versions/{version_id}"): {"description": "edited", "metadata": {}},
    }


#: Endpoints that never touch a project (they need no key).
_OPEN = {
    ("get", "/api/v1/health"),
    ("get", "/api/v1/viewer"),
    ("get", "/api/v1/artifacts/blob-stats"),
    ("post", "/api/v1/session"),
    ("delete", "/api/v1/session"),
}
#: A value for each required query parameter.
_QUERY = {"key": "loss", "keys": "loss", "role": "logged", "sha256": EMPTY_SHA}


def _calls(world: World, project: str, entity: str = "team-a") -> list[Call]:
    """One call per operation of the OpenAPI schema, aimed at `entity/project`'s run."""
    schema = world.client.get("/api/v1/openapi.json").json()
    values = {
        "entity": entity,
        "project": project,
        **world.ids[project],
        "path": "output.log",
        "digest": EMPTY_SHA,
        "name": "corpus",
    }
    bodies = _bodies(world, project, entity)
    calls = []
    for template, operations in schema["paths"].items():
        for method, op in operations.items():
            if (method, template) in _OPEN:
                continue
            url = re.sub(r"\{(\w+)(:path)?\}", lambda m: values[m.group(1)], template)
            required = [p["name"] for p in op.get("parameters", []) if p.get("in") == "query" and p.get("required")]
            unknown = set(required) - set(_QUERY)
            assert not unknown, f"no test value for the query parameters {unknown} of {template}"
            if required:
                url += "?" + "&".join(f"{name}={_QUERY[name]}" for name in required)
            if "requestBody" in op and (method, template) not in bodies:
                raise AssertionError(f"no test body for {method.upper()} {template}: add one to _bodies")
            calls.append(Call(method, template, url, bodies.get((method, template))))
    # The project listing must hide private projects rather than refuse: checked separately.
    return [c for c in calls if c.template not in ("/api/v1/projects", "/api/v1/store/projects")]


def _send(world: World, call: Call, key: str | None) -> Any:
    return world.client.request(call.method.upper(), call.url, json=call.body, headers=_auth(key))


def _state_of_team_a(world: World) -> tuple[Any, ...]:
    view = world.store.get_run("team-a", "secret", "secret-run")
    assert view is not None, "team-a's run was deleted or moved"
    return (view.name, view.stop_requested, view.last_step, view.state, tuple(view.tags))


def test_every_endpoint_is_covered(world: World) -> None:
    templates = {c.template for c in _calls(world, "secret")}
    # The SDK's, the web app's and the remote Api's endpoints are all among them.
    for expected in (
        "/api/v1/runs/begin",
        "/api/v1/sessions/{session_id}/records",
        "/api/v1/incarnations/{incarnation_id}/heartbeat",
        "/api/v1/runs/{entity}/{project}/{run_id}",
        "/api/v1/runs/{entity}/{project}/{run_id}/stop",
        "/api/v1/store/incarnations/{incarnation_id}/series",
    ):
        assert expected in templates
    assert len(templates) >= 30


def test_another_teams_key_cannot_touch_private_runs(world: World) -> None:
    before = _state_of_team_a(world)
    for call in _calls(world, "secret"):
        response = _send(world, call, world.keys["bob"])
        assert response.status_code in (403, 404), (call.method, call.url, response.status_code, response.text)
        assert "error" in response.json()
        # Nothing of team-a's leaks into the answer.
        assert "secret-run" not in response.text or "team-a/secret" in response.json()["error"]["message"]
    assert _state_of_team_a(world) == before
    assert world.store.get_run("team-b", "stolen", "secret-run") is None


def test_owner_succeeds_on_the_same_calls(world: World) -> None:
    """Positive control: the calls above are well-formed, so their refusal was the auth check."""
    skip_mutating = ("delete", "/move", "/stop", "/crashed", "/begin")
    for call in _calls(world, "secret", entity="team-a"):
        if any(s in call.url or s == call.method for s in skip_mutating):
            continue
        if call.body and "entity" in call.body and call.body.get("entity") == "team-b":
            continue
        response = _send(world, call, world.keys["alice"])
        assert response.status_code < 300, (call.method, call.url, response.status_code, response.text)


def test_listing_hides_other_teams_private_projects(world: World) -> None:
    listed = world.client.get("/api/v1/projects", headers=_auth(world.keys["bob"])).json()["projects"]
    names = {(p["entity"], p["name"]) for p in listed}
    assert ("team-b", "mine") in names and ("team-a", "open") in names
    assert ("team-a", "secret") not in names
    for entity in (None, "team-a"):
        response = world.client.get(
            "/api/v1/store/projects", params={"entity": entity} if entity else {}, headers=_auth(world.keys["bob"])
        )
        import msgpack

        rows = msgpack.unpackb(response.content)
        assert ("team-a", "secret") not in {(r["entity"], r["name"]) for r in rows}
    alice = world.client.get("/api/v1/projects", headers=_auth(world.keys["alice"])).json()["projects"]
    assert ("team-a", "secret") in {(p["entity"], p["name"]) for p in alice}


@pytest.mark.parametrize("who", ["none", "wrong", "malformed", "revoked"])
def test_missing_wrong_and_revoked_keys_are_401(world: World, who: str) -> None:
    key = {
        "none": None,
        "wrong": "bl_" + secrets.token_hex(6) + secrets.token_urlsafe(24),
        "malformed": "not-a-key",
        "revoked": world.keys["carol"],
    }[who]
    for call in _calls(world, "secret"):
        response = _send(world, call, key)
        assert response.status_code == 401, (who, call.method, call.url, response.status_code, response.text)
        assert response.json()["error"]["code"] == "unauthorized"
        if key:
            assert key not in response.text  # the key is never echoed
    if who != "none":
        assert world.client.get("/api/v1/viewer", headers=_auth(key)).status_code == 401


def test_revoking_a_key_takes_effect_at_once(world: World) -> None:
    key = world.keys["alice"]
    url = "/api/v1/runs/team-a/secret/secret-run"
    assert world.client.get(url, headers=_auth(key)).status_code == 200
    key_id = world.store.list_api_keys("alice")[0].id
    assert world.store.revoke_api_key(key_id)
    assert world.client.get(url, headers=_auth(key)).status_code == 401


def test_public_project_is_readable_by_anyone_and_writable_by_members_only(world: World) -> None:
    reads = [c for c in _calls(world, "open") if c.method == "get"]
    assert len(reads) >= 15
    for key in (None, world.keys["bob"]):
        for call in reads:
            response = _send(world, call, key)
            assert response.status_code == 200, (call.url, response.status_code, response.text)
    anonymous = world.client.get("/api/v1/projects").json()["projects"]
    assert {(p["entity"], p["name"]) for p in anonymous} == {("team-a", "open")}

    writes = [c for c in _calls(world, "open") if c.method != "get"]
    read_only_posts = ("/series", "/series/keys", "/series/groups", "/media", "/query", "/count")
    writes = [c for c in writes if not c.template.endswith(read_only_posts)]
    assert len(writes) >= 8
    for key, expected in ((None, 401), (world.keys["bob"], 403)):
        for call in writes:
            response = _send(world, call, key)
            assert response.status_code == expected, (call.method, call.url, response.status_code, response.text)
    view = world.store.get_run("team-a", "open", "open-run")
    assert view is not None and view.name != "renamed-by-someone" and not view.stop_requested
    # A member writes it.
    response = world.client.post("/api/v1/runs/team-a/open/open-run/stop", headers=_auth(world.keys["alice"]))
    assert response.status_code == 200


def test_members_write_their_own_entity_and_team(world: World) -> None:
    for entity in ("alice", "team-a"):
        body = _bodies(world, "secret", entity)[("post", "/api/v1/runs/begin")]
        body["project"] = "new-project"
        response = world.client.post("/api/v1/runs/begin", json=body, headers=_auth(world.keys["alice"]))
        assert response.status_code == 200, response.text
        assert response.json()["entity"] == entity
    body = _bodies(world, "secret", "bob")[("post", "/api/v1/runs/begin")]
    response = world.client.post("/api/v1/runs/begin", json=body, headers=_auth(world.keys["alice"]))
    assert response.status_code == 403


# -- the web app's session cookie ------------------------------------------------------------------------
WEB = {"X-Branchline-Client": "web"}
SECRET_RUN = "/api/v1/runs/team-a/secret/secret-run"


def _login(world: World, key: str) -> Any:
    return world.client.post("/api/v1/session", json={"api_key": key}, headers=WEB)


def test_session_cookie_alone_reads_a_private_project(world: World) -> None:
    assert world.client.get(SECRET_RUN).status_code == 401  # anonymous before logging in
    response = _login(world, world.keys["alice"])
    assert response.status_code == 200, response.text
    assert response.json()["username"] == "alice" and response.json()["auth_required"] is True
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"branchline_session={world.keys['alice']};")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= attributes and "secure" not in attributes  # plain http here
    assert "samesite=strict" in cookie.lower() and "path=/" in cookie.lower()

    # No Authorization header from here on: the cookie alone authenticates reads, downloads included.
    assert world.client.get("/api/v1/viewer").json()["username"] == "alice"
    assert world.client.get(SECRET_RUN).status_code == 200
    download = world.client.get(SECRET_RUN + "/files/output.log")
    assert download.status_code == 200 and download.text == "hello"
    listed = world.client.get("/api/v1/projects").json()["projects"]
    assert ("team-a", "secret") in {(p["entity"], p["name"]) for p in listed}
    # ... and, with the web app's header, writes.
    patched = world.client.patch(SECRET_RUN, json={"name": "renamed-in-browser"}, headers=WEB)
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "renamed-in-browser"


def test_session_over_https_is_a_secure_cookie(world: World) -> None:
    # No `with`: the app's lifespan (and store) is the fixture's, already running.
    client = TestClient(world.client.app, base_url="https://testserver")
    response = client.post("/api/v1/session", json={"api_key": world.keys["alice"]}, headers=WEB)
    assert response.status_code == 200
    assert "secure" in {part.strip().lower() for part in response.headers["set-cookie"].split(";")}


@pytest.mark.parametrize("who", ["wrong", "malformed", "revoked", "blank"])
def test_session_with_a_bad_key_is_401_and_sets_no_cookie(world: World, who: str) -> None:
    key = {
        "wrong": "bl_" + secrets.token_hex(6) + secrets.token_urlsafe(24),
        "malformed": "not-a-key",
        "revoked": world.keys["carol"],
        "blank": "   ",
    }[who]
    response = _login(world, key)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"
    assert "branchline keys create" in response.json()["error"]["message"]
    assert "set-cookie" not in response.headers and not world.client.cookies
    if key.strip():
        assert key not in response.text
    assert world.client.get(SECRET_RUN).status_code == 401


def test_session_login_needs_the_web_apps_header(world: World) -> None:
    """Login is a state change too: a cross-site form must not log a victim into someone's account."""
    response = world.client.post("/api/v1/session", json={"api_key": world.keys["alice"]})
    assert response.status_code == 403 and response.json()["error"]["code"] == "csrf_rejected"
    assert "set-cookie" not in response.headers


def test_delete_session_clears_the_cookie(world: World) -> None:
    assert _login(world, world.keys["alice"]).status_code == 200
    assert world.client.get(SECRET_RUN).status_code == 200
    response = world.client.delete("/api/v1/session")
    assert response.status_code == 200 and response.json() == {"ok": True}
    cleared = response.headers["set-cookie"].lower()
    assert cleared.startswith('branchline_session="";') and "max-age=0" in cleared and "path=/" in cleared
    assert not world.client.cookies
    assert world.client.get(SECRET_RUN).status_code == 401
    assert world.client.get("/api/v1/viewer").json()["username"] is None
    # Logging out does not revoke the key: the SDK's copy keeps working.
    assert world.client.get(SECRET_RUN, headers=_auth(world.keys["alice"])).status_code == 200


def test_cookie_only_writes_need_the_web_apps_header(world: World) -> None:
    assert _login(world, world.keys["alice"]).status_code == 200
    before = _state_of_team_a(world)
    forged = [
        ("POST", SECRET_RUN + "/stop", None),
        ("PATCH", SECRET_RUN, {"name": "forged"}),
        ("DELETE", SECRET_RUN, None),
        ("POST", "/api/v1/series/keys", {"incarnations": [world.ids["secret"]["incarnation_id"]]}),
    ]
    for method, url, body in forged:
        response = world.client.request(method, url, json=body)
        assert response.status_code == 403, (method, url, response.status_code, response.text)
        assert response.json()["error"]["code"] == "csrf_rejected"
        assert "X-Branchline-Client" in response.json()["error"]["message"]
    assert _state_of_team_a(world) == before
    # The same request from the web app (it sends the header) goes through.
    assert world.client.post(SECRET_RUN + "/stop", headers=WEB).status_code == 200
    view = world.store.get_run("team-a", "secret", "secret-run")
    assert view is not None and view.stop_requested


def test_the_authorization_header_wins_over_the_cookie(world: World) -> None:
    assert _login(world, world.keys["alice"]).status_code == 200
    bob = _auth(world.keys["bob"])
    assert world.client.get("/api/v1/viewer", headers=bob).json()["username"] == "bob"
    assert world.client.get(SECRET_RUN, headers=bob).status_code == 403
    # A wrong header is refused even though the cookie is good.
    assert world.client.get(SECRET_RUN, headers=_auth("bl_" + secrets.token_hex(20))).status_code == 401
    # A header-authenticated write needs no web header: no browser sends Authorization cross-site.
    response = world.client.post("/api/v1/runs/team-b/mine/mine-run/stop", headers=bob)
    assert response.status_code == 200, response.text


def test_a_revoked_sessions_key_ends_the_session(world: World) -> None:
    assert _login(world, world.keys["alice"]).status_code == 200
    assert world.store.revoke_api_key(world.store.list_api_keys("alice")[0].id)
    response = world.client.get(SECRET_RUN)
    assert response.status_code == 401 and "Log in again" in response.json()["error"]["message"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]  # the web app says "session ended"
    assert "max-age=0" in response.headers["set-cookie"].lower()  # the stale cookie is dropped...
    listed = world.client.get("/api/v1/projects")  # ... so the next request is simply anonymous
    assert listed.status_code == 200
    assert {(p["entity"], p["name"]) for p in listed.json()["projects"]} == {("team-a", "open")}


def test_session_with_auth_off_answers_the_local_viewer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'local.db'}"
    with open_store(url) as setup:
        add_run(setup, entity="me", project="p", run_id="r1", state="running")
    with TestClient(create_app(ServerSettings(store_url=url, ui_dist=None))) as client:
        response = client.post("/api/v1/session", json={"api_key": "anything"}, headers=WEB)
        assert response.status_code == 200
        assert response.json() == {
            "username": None,
            "entities": [],
            "default_entity": None,
            "auth_required": False,
            "admin": False,
        }
        assert "set-cookie" not in response.headers
        assert client.delete("/api/v1/session").status_code == 200
        # A cookie means nothing without auth: no CSRF refusal either, the caller is the local user.
        client.cookies.set("branchline_session", "whatever")
        assert client.get("/api/v1/viewer").json()["auth_required"] is False
        assert client.post("/api/v1/runs/me/p/r1/stop").status_code == 200


# -- `branchline server` refuses unsafe set-ups ------------------------------------------------------------
def test_server_refuses_a_public_address_without_users(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from branchline.cli.main import cli

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = CliRunner().invoke(cli, ["server", "--store", url, "--host", "0.0.0.0"])
    assert result.exit_code != 0 and "no users" in result.output and "branchline users create" in result.output
    result = CliRunner().invoke(cli, ["server", "--store", url, "--host", "0.0.0.0", "--no-auth"])
    assert result.exit_code != 0 and "loopback" in result.output


def test_server_refuses_an_out_of_date_schema(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from branchline.cli.main import cli
    from branchline.store.engine import upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0002_artifacts")
    result = CliRunner().invoke(cli, ["server", "--store", url])
    assert result.exit_code != 0 and f"branchline db upgrade --store {url}" in result.output


def test_admin_commands(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from branchline.cli.main import cli

    store = ["--store", f"sqlite:///{tmp_path / 'admin.db'}"]
    runner = CliRunner()
    created = runner.invoke(cli, ["users", "create", "dana", *store])
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    assert key.startswith("bl_") and len(key) >= 40
    assert runner.invoke(cli, ["teams", "create", "ml", "--member", "dana", *store]).exit_code == 0
    assert "dana" in runner.invoke(cli, ["teams", "list", *store]).output
    listed = runner.invoke(cli, ["keys", "list", *store]).output
    assert key not in listed  # only ids are ever shown again
    key_id = key[3:15]
    assert key_id in listed and "live" in listed
    assert runner.invoke(cli, ["keys", "revoke", key_id, *store]).exit_code == 0
    assert "revoked" in runner.invoke(cli, ["keys", "list", *store]).output
    assert runner.invoke(cli, ["keys", "revoke", key_id, *store]).exit_code != 0
    assert "dana" in runner.invoke(cli, ["users", "list", *store]).output
    assert runner.invoke(cli, ["users", "create", "ml", *store]).exit_code != 0  # taken by the team
    assert runner.invoke(cli, ["projects", "public", "ml/demo", *store]).exit_code == 0
    with open_store(store[1]) as s:
        assert s.project_is_public("ml", "demo")
        assert s.authenticate(key) is None
