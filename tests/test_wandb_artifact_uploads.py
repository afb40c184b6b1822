"""Artifact uploads in flight are kept in the store: any replica continues what another started.

Two scenarios: in process, a server "restarts" (a second app over the same store file) between
`CreateArtifact` and `CommitArtifact` and the version still commits; and the unmodified wandb
client logs artifacts through two `branchline server` processes on one PostgreSQL database,
behind a round-robin proxy that sends each request to the other replica, then branchline's own
`Api` reads the versions back (digest, files, contents).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from starlette.requests import Request
from starlette.responses import Response

from branchline.api import Api
from branchline.server import ServerSettings, create_app
from branchline.store import open_store
from tests.backends import free_port
from tests.replica_cluster import Replica
from tests.test_wandb_client import WANDB_PYTHON, Server, run_clients

pytestmark = pytest.mark.timeout(180)

CREATE = """mutation CreateArtifact($entityName: String!, $projectName: String!, $artifactTypeName: String!,
  $artifactCollectionName: String!, $digest: String!, $clientID: ID!, $aliases: [ArtifactAliasInput!],
  $metadata: JSONString, $description: String) {
  createArtifact(input: {entityName: $entityName, projectName: $projectName, artifactTypeName: $artifactTypeName,
    artifactCollectionName: $artifactCollectionName, digest: $digest, clientID: $clientID, aliases: $aliases,
    metadata: $metadata, description: $description}) { artifact { id state digest } } }"""
FILES = """mutation CreateArtifactFiles($artifactFiles: [CreateArtifactFileSpecInput!]!) {
  createArtifactFiles(input: {artifactFiles: $artifactFiles}) { files { edges { node { name uploadUrl } } } } }"""
MANIFEST = """mutation CreateArtifactManifest($artifactID: ID!) {
  createArtifactManifest(input: {artifactID: $artifactID}) { artifactManifest { id file { uploadUrl } } } }"""
COMMIT = """mutation CommitArtifact($artifactID: ID!) {
  commitArtifact(input: {artifactID: $artifactID}) { artifact { id state digest versionIndex } } }"""
CLIENT_ID = """query ClientIDMapping($clientID: ID!) { clientIDMapping(clientID: $clientID) { serverID } }"""
BY_ID = """query ArtifactByID($id: ID!) { artifact(id: $id) { id state } }"""


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


class _App:
    """One in-process server over the shared store file; `gql` posts an operation as alice."""

    def __init__(self, root: Path, key: str) -> None:
        settings = ServerSettings(
            store_url=f"sqlite:///{root / 'store.db'}",
            ui_dist=None,
            auth_required=True,
            artifacts_url=str(root / "blobs"),
        )
        self.client = TestClient(create_app(settings), base_url="http://testserver")
        self.client.__enter__()
        token = base64.b64encode(f"api:{key}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}

    def gql(self, query: str, name: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = {"query": query, "operationName": name, "variables": variables}
        answer = self.client.post("/graphql", json=body, headers=self.headers)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def put(self, url: str, data: bytes) -> httpx.Response:
        return self.client.put(url.removeprefix("http://testserver"), content=data)

    def close(self) -> None:
        self.client.__exit__(None, None, None)


def test_a_restart_between_create_and_commit_still_commits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRANCHLINE_SERVER_SECRET", "shared-by-every-replica")
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        store.create_user("alice")
        key = store.create_api_key("alice")[1]
    content = b"alpha"
    manifest = {
        "version": 1,
        "storagePolicy": "wandb-storage-policy-v1",
        "storagePolicyConfig": {"storageLayout": "V2"},
        "contents": {"data/a.txt": {"digest": _md5(content), "size": len(content)}},
    }

    first = _App(tmp_path, key)
    created = first.gql(
        CREATE,
        "CreateArtifact",
        {
            "entityName": "alice",
            "projectName": "arts",
            "artifactTypeName": "dataset",
            "artifactCollectionName": "ds",
            "digest": "d" * 32,
            "clientID": "client-ds",
            "aliases": [{"artifactCollectionName": "ds", "alias": "best"}],
            "metadata": json.dumps({"k": 1}),
            "description": "one file",
        },
    )["data"]["createArtifact"]["artifact"]
    assert created["state"] == "PENDING"
    upload_id = created["id"]
    files = first.gql(
        FILES,
        "CreateArtifactFiles",
        {"artifactFiles": [{"artifactID": upload_id, "name": "data/a.txt", "md5": _md5(content)}]},
    )["data"]["createArtifactFiles"]["files"]["edges"]
    file_url = files[0]["node"]["uploadUrl"]
    first.close()  # the server goes away with the upload half done

    second = _App(tmp_path, key)
    try:
        # A signed URL from the first process is honoured by the second (same secret), and the
        # upload it names is found in the store.
        assert second.put(file_url, content).status_code == 200
        assert second.gql(BY_ID, "ArtifactByID", {"id": upload_id})["data"]["artifact"]["state"] == "PENDING"
        url = second.gql(MANIFEST, "CreateArtifactManifest", {"artifactID": upload_id})["data"][
            "createArtifactManifest"
        ]["artifactManifest"]["file"]["uploadUrl"]
        assert second.put(url, json.dumps(manifest).encode()).json() == {"entries": 1}
        committed = second.gql(COMMIT, "CommitArtifact", {"artifactID": upload_id})["data"]["commitArtifact"]
        assert committed["artifact"] == {"id": upload_id, "state": "COMMITTED", "digest": "d" * 32, "versionIndex": 0}
        # Committed: the client id still names the version; the upload is no longer in flight.
        mapping = second.gql(CLIENT_ID, "ClientIDMapping", {"clientID": "client-ds"})["data"]["clientIDMapping"]
        assert mapping == {"serverID": upload_id}
        late = second.put(file_url, content)
        assert late.status_code == 404 and "log the artifact again" in late.text
    finally:
        second.close()

    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        row = store.resolve_artifact("alice", "arts", "ds", "best")
        assert row is not None and (row.id, row.version, row.description, row.metadata) == (
            upload_id,
            "v0",
            "one file",
            {"k": 1},
        )
        entries = store.artifact_entries(row.id)
        assert [(e.path, e.digest, e.size) for e in entries] == [
            ("data/a.txt", hashlib.sha256(content).hexdigest(), len(content))
        ]
        assert store.get_pending_upload(upload_id) is None


# -- the real client through two replicas -----------------------------------------------------------
@dataclass
class _Proxied(Server):
    """The clients' view of the deployment: every request goes to the proxy."""

    proxy_url: str = ""

    @property
    def url(self) -> str:
        return self.proxy_url


class _RoundRobin:
    """An HTTP proxy that sends each request to the next replica in turn (no stickiness at all)."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.turn = 0
        self.lock = threading.Lock()
        #: (replica index, path, GraphQL operation) of every request passed on.
        self.seen: list[tuple[int, str, str]] = []
        self.http = httpx.Client(timeout=120)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        body = await request.body()
        with self.lock:
            index = self.turn % len(self.backends)
            self.turn += 1
        operation = ""
        if request.url.path.endswith("/graphql"):
            try:
                operation = str(json.loads(body).get("operationName") or "")
            except ValueError:
                operation = "?"
        with self.lock:
            self.seen.append((index, request.url.path, operation))
        url = self.backends[index] + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        # Host stays the proxy's, so the URLs the replicas sign point back here.
        headers = [
            (k, v) for k, v in request.headers.items() if k.lower() not in ("content-length", "transfer-encoding")
        ]
        answer = await _in_thread(lambda: self.http.request(request.method, url, headers=headers, content=body))
        skip = ("content-length", "content-encoding", "transfer-encoding", "connection")
        out = Response(
            answer.content, answer.status_code, {k: v for k, v in answer.headers.items() if k.lower() not in skip}
        )
        await out(scope, receive, send)

    @contextmanager
    def running(self) -> Iterator[_RoundRobin]:
        server = uvicorn.Server(uvicorn.Config(self, host="127.0.0.1", port=self.port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            while not server.started:
                thread.join(0.05)
                assert thread.is_alive(), "the proxy did not start"
            yield self
        finally:
            server.should_exit = True
            thread.join(10)
            self.http.close()


async def _in_thread(call: Any) -> httpx.Response:
    from starlette.concurrency import run_in_threadpool

    found: httpx.Response = await run_in_threadpool(call)
    return found


LOG = """
import json, os, wandb
out = {}
os.makedirs("data", exist_ok=True)
open("data/a.txt", "w").write("alpha")
open("data/b.txt", "w").write("beta")
run = wandb.init(project="arts", id="r0")
run.log({"loss": 1.0})
art = wandb.Artifact("ds", type="dataset", description="two files", metadata={"k": 1})
art.add_dir("data")
run.log_artifact(art, aliases=["best"])
art.wait()
out["v0"] = [art.id, art.version, art.digest]
open("data/b.txt", "w").write("beta, changed")
again = wandb.Artifact("ds", type="dataset")
again.add_dir("data")
run.log_artifact(again)
again.wait()
out["v1"] = [again.id, again.version, again.digest]
run.finish()
print("RESULT=" + json.dumps(out))
"""


def test_the_wandb_client_logs_artifacts_through_alternating_replicas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.replica_cluster import fresh_database
    from tests.store_factory import pg_available

    if not WANDB_PYTHON.exists():
        pytest.skip(f"the wandb client's venv is missing ({WANDB_PYTHON}); run scripts/install.sh")
    if not pg_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    with ExitStack() as stack:
        url = stack.enter_context(fresh_database("bl_wandb_uploads"))
        with open_store(url) as store:
            store.create_user("alice")
            key = store.create_api_key("alice")[1]
        env = {"BRANCHLINE_SERVER_SECRET": uuid.uuid4().hex}
        blobs = tmp_path / "blobs"  # shared, as a bucket would be
        replicas = []
        for i in (1, 2):
            home = tmp_path / f"replica{i}"
            home.mkdir()
            proc = Replica(url, home, crash_timeout=60, extra_args=["--artifacts", str(blobs)], extra_env=env)
            stack.callback(proc.stop)
            replicas.append(proc)
        threads = [threading.Thread(target=r.start) for r in replicas]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(r.proc is not None and r.proc.poll() is None for r in replicas)
        proxy = stack.enter_context(_RoundRobin([r.base_url for r in replicas]).running())
        client_home = tmp_path / "client"
        client_home.mkdir()
        facade = _Proxied(replicas[0], stack.enter_context(open_store(url)), key, client_home, proxy.url)
        done = run_clients([LOG], facade)[0]
        line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT="))
        logged = json.loads(line[len("RESULT=") :])

        # Each artifact's requests, from CreateArtifact to CommitArtifact, reached both replicas:
        # nothing depended on one process's memory.
        spans: list[set[int]] = []
        for index, path, operation in proxy.seen:
            if operation == "CreateArtifact":
                spans.append(set())
            if spans and (operation.startswith(("CreateArtifact", "CommitArtifact")) or "/wandb/artifacts/" in path):
                spans[-1].add(index)
        assert spans == [{0, 1}, {0, 1}], proxy.seen

        monkeypatch.setenv("BRANCHLINE_ARTIFACT_STORAGE", blobs.as_uri())  # where the replicas put them
        api = Api(overrides={"store_url": url})
        try:
            versions = {a.version: a for a in api.artifacts("dataset", "alice/arts/ds")}
            assert sorted(versions) == ["v0", "v1"]
            v0, v1 = versions["v0"], versions["v1"]
            assert [v0.id, v0.digest] == [logged["v0"][0], logged["v0"][2]] and logged["v0"][1] == "v0"
            assert [v1.id, v1.digest] == [logged["v1"][0], logged["v1"][2]] and logged["v1"][1] == "v1"
            assert "best" in v0.aliases and v0.description == "two files" and v0.metadata == {"k": 1}
            entries = {e.path: e for e in v0.manifest}
            assert sorted(entries) == ["a.txt", "b.txt"]
            assert entries["a.txt"].digest == hashlib.sha256(b"alpha").hexdigest() and entries["a.txt"].size == 5
            got = Path(v1.download(str(tmp_path / "dl")))
            assert (got / "a.txt").read_text() == "alpha" and (got / "b.txt").read_text() == "beta, changed"
        finally:
            api.close()
        with open_store(url) as store:
            assert store.get_pending_upload(logged["v1"][0]) is None  # committed: no longer in flight
