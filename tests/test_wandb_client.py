"""The unmodified wandb client logs into a real `branchline server` on a loopback port.

The client runs from its own virtual environment (`.wandb-venv`, made by scripts/install.sh with
the pinned release), never the project's. Each scenario runs a wandb script and then asserts on
what branchline's own store reads back: history rows per key, summary, config, state, lineage,
console lines and files. Protocol details the client only exercises under faults (a replayed
chunk, an unknown operation, a forged upload URL) are driven over HTTP directly.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from branchline.store import Store, open_store
from tests.backends import ServerProcess, free_port
from tests.replica_cluster import Replica
from tests.store_factory import pg_available, pg_schema_url

ROOT = Path(__file__).resolve().parent.parent
WANDB_PYTHON = ROOT / ".wandb-venv" / "bin" / "python"
#: wandb 0.17.9: the last client whose Python code speaks GraphQL itself (no Go core).
OLD_WANDB_PYTHON = ROOT / ".wandb-venv-old" / "bin" / "python"
pytestmark = pytest.mark.timeout(300)


@dataclass
class Server:
    process: ServerProcess
    store: Store
    key: str
    workdir: Path

    @property
    def url(self) -> str:
        return self.process.base_url

    def headers(self, key: str | None = None) -> dict[str, str]:
        token = base64.b64encode(f"api:{key or self.key}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def client(self, script: str, *, key: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `script` with the real wandb client pointed at this server."""
        return run_clients([script], self, key=key, check=check)[0]


def start_clients(
    scripts: list[str], server: Server, *, key: str | None = None, python: Path = WANDB_PYTHON
) -> list[subprocess.Popen[str]]:
    """Start scripts at once (each ~5 s of client start-up), each in its own directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "BRANCHLINE_"))}
    env.update(
        WANDB_BASE_URL=server.url,
        WANDB_API_KEY=key or server.key,
        WANDB_SILENT="true",
        WANDB_CONFIG_DIR=str(server.workdir / "wandb-config"),
        WANDB_CACHE_DIR=str(server.workdir / "wandb-cache"),
        PYTHONUNBUFFERED="1",
    )
    procs = []
    for script in scripts:
        cwd = server.workdir / f"client{len(list(server.workdir.glob('client*')))}"
        cwd.mkdir()
        (cwd / "script.py").write_text(textwrap.dedent(script))
        env["WANDB_DIR"] = str(cwd)
        procs.append(
            subprocess.Popen(
                [str(python), "script.py"],
                cwd=cwd,
                env=dict(env),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    return procs


def wait_clients(
    procs: list[subprocess.Popen[str]], server: Server, *, check: bool = True
) -> list[subprocess.CompletedProcess[str]]:
    done = []
    for proc in procs:
        out, _ = proc.communicate(timeout=180)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, ""))
    if check:
        for result in done:
            assert result.returncode == 0, result.stdout + server.process.log.read_text()[-3000:]
    return done


def run_clients(
    scripts: list[str], server: Server, *, key: str | None = None, check: bool = True, python: Path = WANDB_PYTHON
) -> list[subprocess.CompletedProcess[str]]:
    """Run scripts at once and wait for them all."""
    return wait_clients(start_clients(scripts, server, key=key, python=python), server, check=check)


def _need_client() -> None:
    if not WANDB_PYTHON.exists():
        message = f"the wandb client's venv is missing ({WANDB_PYTHON}); run scripts/install.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@contextmanager
def _serve(url: str, workdir: Path, extra_args: list[str]) -> Iterator[Server]:
    store = open_store(url)
    store.create_user("alice")
    key = store.create_api_key("alice")[1]
    # A ServerProcess with time to start on a busy machine.
    process = Replica(url, workdir, crash_timeout=60, extra_args=extra_args)
    process.start()
    try:
        yield Server(process, store, key, workdir)
    finally:
        process.stop()
        store.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server over an SQLite store (blobs beside it)."""
    _need_client()
    workdir = tmp_path_factory.mktemp("wandb-server")
    with _serve(f"sqlite:///{workdir / 'store.db'}", workdir, []) as found:
        yield found


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server over PostgreSQL (a fresh schema) with blobs in a directory."""
    _need_client()
    if not pg_available():
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    workdir = tmp_path_factory.mktemp("wandb-pg-server")
    with pg_schema_url("bl_wandb") as url, _serve(url, workdir, ["--artifacts", str(workdir / "blobs")]) as found:
        yield found


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def any_server(request: pytest.FixtureRequest) -> Server:
    """The scenarios that must hold on both store backends."""
    found: Server = request.getfixturevalue("server" if request.param == "sqlite" else "pg_server")
    return found


# -- the real client -------------------------------------------------------------------------------
BASIC = """
import wandb
run = wandb.init(
    project="proj", id="basic", config={"lr": 0.1, "opt": {"m": 0.9}}, notes="hello", tags=["t1"],
    group="sweep-a", job_type="train",
)
run.define_metric("acc", summary="max")
for i in range(5):
    print(f"line {i}")
    run.log({"loss": 1.0 / (i + 1), "acc": i / 10, "nested": {"a": i}, "label": f"s{i}"})
run.config.update({"late": True})
run.summary["best"] = 42
open("extra.txt", "w").write("saved")
run.save("extra.txt", policy="now")
run.tags = ("t1", "t2")
run.name = "renamed"
run.alert(title="Loss low", text="loss reached 0.2", level=wandb.AlertLevel.WARN)
run.finish()
"""


def test_init_log_finish(any_server: Server) -> None:
    any_server.client(BASIC)
    _check_basic(any_server.store, "basic")


def test_an_older_client_that_speaks_graphql_itself(server: Server) -> None:
    if not OLD_WANDB_PYTHON.exists():
        message = f"the older wandb client's venv is missing ({OLD_WANDB_PYTHON}); run scripts/install.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    run_clients([BASIC.replace('id="basic"', 'id="older"')], server, python=OLD_WANDB_PYTHON)
    _check_basic(server.store, "older")


def _check_basic(store: Store, run_id: str) -> None:
    run = store.require_run("alice", "proj", run_id)
    assert (run.state, run.exit_code, run.notes) == ("finished", 0, "hello")
    assert (run.group, run.job_type) == ("sweep-a", "train")
    assert run.config == {"lr": 0.1, "opt": {"m": 0.9}, "late": True}
    assert "_wandb" not in run.config and run.metadata["wandb"]["cli_version"]
    inc = run.incarnation_id
    steps, values = store.read_series(inc, "loss")
    assert steps.tolist() == [0, 1, 2, 3, 4] and values.tolist() == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert store.read_series(inc, "nested.a")[1].tolist() == [0, 1, 2, 3, 4]
    assert store.read_objects(inc, "label") == [(i, f"s{i}") for i in range(5)]
    assert run.summary["best"] == 42 and run.summary["loss"] == 0.2 and run.summary["acc"] == {"max": 0.4}
    assert run.summary["_step"] == 4
    lines = [line["text"] for line in store.console_lines(inc)]
    assert lines[:5] == [f"line {i}" for i in range(5)]
    files = {f["path"]: f for f in store.files(inc)}
    assert {"extra.txt", "output.log", "config.yaml", "wandb-metadata.json", "wandb-summary.json"} <= set(files)
    assert files["extra.txt"]["size"] == len("saved")
    assert (run.name, run.tags) == ("renamed", ["t1", "t2"])
    alerts = [(a["title"], a["text"], a["level"]) for a in store.alerts(inc)]
    assert alerts == [("Loss low", "loss reached 0.2", "WARN")]


MEDIA = """
import numpy as np
import wandb
run = wandb.init(project="media", id="images")
pixels = np.zeros((8, 8, 3), dtype=np.uint8)
for i in range(2):
    run.log({"sample": wandb.Image(pixels + i), "loss": float(i)})
run.finish()
"""


def test_media_files_and_their_descriptors(server: Server) -> None:
    server.client(MEDIA)
    run = server.store.require_run("alice", "media", "images")
    inc = run.incarnation_id
    values = server.store.read_objects(inc, "sample")
    assert [step for step, _ in values] == [0, 1]
    files = {f["path"]: f for f in server.store.files(inc)}
    for _, descriptor in values:  # the client's own descriptor, untouched, naming a stored file
        assert descriptor["_type"] == "image-file" and descriptor["format"] == "png"
        stored = files[descriptor["path"]]
        assert descriptor["path"].startswith("media/images/")
        assert stored["size"] == descriptor["size"] and stored["sha256"] == descriptor["sha256"]
    assert server.store.read_series(inc, "loss")[1].tolist() == [0.0, 1.0]


def test_branchline_ui_prints_the_client_environment(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "BRANCHLINE_"))}
    command = [sys.executable, "-m", "branchline", "ui", "--no-browser", "--port", str(port), "--dir", str(tmp_path)]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        seen = ""
        deadline = time.monotonic() + 120
        while "WANDB_API_KEY" not in seen and time.monotonic() < deadline:
            seen += proc.stderr.readline()
        assert f"export WANDB_BASE_URL=http://127.0.0.1:{port}" in seen
        key = seen.split("export WANDB_API_KEY=")[1].split()[0]
        assert re.fullmatch(r"(\w+-)?\w{40,}", key), key  # the client's own format check
        answer = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": "query Viewer { viewer { entity } }", "operationName": "Viewer"},
            headers={"Authorization": "Basic " + base64.b64encode(f"api:{key}".encode()).decode()},
            timeout=30,
        )
        assert answer.status_code == 200 and answer.json()["data"]["viewer"]["entity"]
    finally:
        proc.terminate()
        proc.wait(10)


def _logger(run_id: str, steps: range, extra: str = "", project: str = "proj") -> str:
    return f"""
import wandb
run = wandb.init(project="{project}", id="{run_id}"{extra})
for i in {list(steps)!r}:
    run.log({{"x": float(i)}}, step=i)
run.finish()
"""


def test_resume_modes(server: Server) -> None:
    server.client(_logger("res", range(3), project="resume", extra=', config={"a": 1}'))
    first = server.store.require_run("alice", "resume", "res")
    must, never, missing_must, allow_new, auto = run_clients(
        [
            """
import wandb
run = wandb.init(project="resume", id="res", resume="must", config={"b": 2})
assert run.starting_step == 3, run.starting_step
run.log({"x": 3.0})
run.log({"x": 4.0})
run.finish()
""",
            _logger("res", range(1), project="resume", extra=', resume="never"'),
            _logger("nope", range(1), project="resume", extra=', resume="must"'),
            _logger("fresh", range(2), project="resume", extra=', resume="allow"'),
            _logger("autorun", range(2), project="resume", extra=', resume="auto"'),
        ],
        server,
        check=False,
    )
    assert must.returncode == 0, must.stdout
    assert never.returncode != 0 and missing_must.returncode != 0
    assert allow_new.returncode == 0 and auto.returncode == 0, allow_new.stdout + auto.stdout
    store = server.store
    run = store.require_run("alice", "resume", "res")
    assert run.incarnation_id == first.incarnation_id and run.state == "finished"
    steps, values = store.read_series(run.incarnation_id, "x")
    assert steps.tolist() == [0, 1, 2, 3, 4] and values.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert run.config == {"a": 1, "b": 2}
    assert store.get_run("alice", "resume", "nope") is None
    assert store.read_series(store.require_run("alice", "resume", "fresh").incarnation_id, "x")[0].tolist() == [0, 1]


def test_fork_and_rewind(any_server: Server) -> None:
    server = any_server
    server.client(_logger("parent", range(6), project="branch", extra=', config={"lr": 0.1}'))
    server.client(
        """
import wandb
run = wandb.init(project="branch", id="child", fork_from="parent?_step=2", config={"lr": 0.2})
for i in range(3, 6):
    run.log({"x": 100.0 + i})
run.finish()
"""
    )
    store = server.store
    parent = store.require_run("alice", "branch", "parent")
    child = store.require_run("alice", "branch", "child")
    assert child.forked_from is not None and child.forked_from["run_id"] == "parent"
    assert child.forked_from["step"] == 2 and child.forked_from["kind"] == "fork"
    steps, values = store.read_series(child.incarnation_id, "x")
    assert steps.tolist() == [0, 1, 2, 3, 4, 5] and values.tolist() == [0.0, 1.0, 2.0, 103.0, 104.0, 105.0]
    assert child.config["lr"] == 0.2 and child.state == "finished"

    server.client(
        """
import wandb
run = wandb.init(project="branch", id="parent", resume_from="parent?_step=3")
for i in range(4, 7):
    run.log({"x": 200.0 + i})
run.finish()
"""
    )
    rewound = store.require_run("alice", "branch", "parent")
    assert rewound.incarnation_id != parent.incarnation_id and rewound.state == "finished"
    archived = store.archived(rewound)
    assert [a.incarnation_id for a in archived] == [parent.incarnation_id]
    assert rewound.forked_from is not None and rewound.forked_from["kind"] == "rewind"
    steps, values = store.read_series(rewound.incarnation_id, "x")
    assert steps.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert values.tolist() == [0.0, 1.0, 2.0, 3.0, 204.0, 205.0, 206.0]
    assert store.read_series(parent.incarnation_id, "x")[0].tolist() == [0, 1, 2, 3, 4, 5]  # kept as it was


def test_a_wrong_key_is_refused_at_once(server: Server) -> None:
    result = server.client(_logger("denied", range(1)), key="bl_" + "x" * 44, check=False)
    assert result.returncode != 0 and "API key" in result.stdout
    assert server.store.get_run("alice", "proj", "denied") is None


# -- the protocol, driven directly ----------------------------------------------------------------
def _gql(server: Server, query: str, name: str, variables: dict[str, object] | None = None) -> httpx.Response:
    body = {"query": query, "operationName": name, "variables": variables}
    return httpx.post(server.url + "/graphql", json=body, headers=server.headers(), timeout=10)


def test_graphql_projection_and_unknown_operations(server: Server) -> None:
    query = """
    fragment Who on User { login: username entity }
    query Viewer($withTeams: Boolean!) {
      viewer { ...Who id somethingNew teams @include(if: $withTeams) { edges { node { name } } } email @skip(if: true) }
    }"""
    answer = _gql(server, query, "Viewer", {"withTeams": False}).json()
    assert answer == {"data": {"viewer": {"login": "alice", "entity": "alice", "id": "alice", "somethingNew": None}}}
    unknown = _gql(server, "query NotYetServed { thing }", "NotYetServed")
    assert unknown.status_code == 200 and "NotYetServed" in unknown.json()["errors"][0]["message"]
    garbled = _gql(server, "query {", "Broken")
    assert garbled.status_code == 200 and garbled.json()["errors"]
    denied = httpx.post(
        server.url + "/graphql", json={"query": "query Viewer { viewer { id } }"}, headers=server.headers("bad")
    )
    assert denied.status_code == 401 and denied.json()["errors"][0]["message"]


UPSERT = """mutation UpsertBucket($name: String, $project: String, $config: JSONString) {
  upsertBucket(input: {name: $name, modelName: $project, config: $config}) {
    bucket { id name historyLineCount project { name entity { name } } } inserted } }"""


def test_file_stream_is_idempotent_by_offset(any_server: Server) -> None:
    server = any_server
    made = _gql(server, UPSERT, "UpsertBucket", {"name": "stream", "project": "raw", "config": '{"k": {"value": 1}}'})
    bucket = made.json()["data"]["upsertBucket"]["bucket"]
    assert bucket["project"] == {"name": "raw", "entity": {"name": "alice"}} and bucket["historyLineCount"] == 0
    url = server.url + "/files/alice/raw/stream/file_stream"
    rows = [f'{{"_step": {i}, "_runtime": {i}.5, "_timestamp": 1.7e9, "v": {i}}}' for i in range(4)]
    first = {
        "files": {
            "wandb-history.jsonl": {"offset": 0, "content": rows[:3]},
            "output.log": {"offset": 0, "content": ["2026-11-22T08:45:41.796054 progress 10", "second"]},
            "wandb-events.jsonl": {"offset": 0, "content": ['{"system.cpu": 5.0, "_wandb": true, "_runtime": 1}']},
        }
    }
    for _ in range(2):  # a retried request
        assert httpx.post(url, json=first, headers=server.headers()).status_code == 200
    overlap = {
        "files": {
            "wandb-history.jsonl": {"offset": 2, "content": rows[2:]},
            "output.log": {"offset": 0, "content": ["ERROR 2026-11-22T08:45:42.000000 progress 90"]},
            "wandb-summary.json": {"offset": 0, "content": ['{"v": 3, "best": 7, "_wandb": {"runtime": 3}}']},
        },
        "complete": True,
        "exitcode": 2,
    }
    assert httpx.post(url, json=overlap, headers=server.headers()).json() == {"exitcode": None, "limits": {}}
    run = server.store.require_run("alice", "raw", "stream")
    steps, values = server.store.read_series(run.incarnation_id, "v")
    assert steps.tolist() == [0, 1, 2, 3] and values.tolist() == [0, 1, 2, 3]
    assert server.store.read_series(run.incarnation_id, "_runtime")[1].tolist() == [0.5, 1.5, 2.5, 3.5]
    lines = server.store.console_lines(run.incarnation_id)
    assert [(line["stream"], line["text"]) for line in lines] == [("stderr", "progress 90"), ("stdout", "second")]
    assert server.store.history_keys(run.incarnation_id, stream=1)["cpu"]["count"] == 1
    assert (run.state, run.exit_code, run.summary["best"], run.config) == ("failed", 2, 7, {"k": 1})
    again = _gql(server, UPSERT, "UpsertBucket", {"name": "stream", "project": "raw"}).json()
    assert again["data"]["upsertBucket"]["bucket"]["historyLineCount"] == 4


def test_a_stop_from_the_web_app_reaches_the_client(server: Server) -> None:
    _gql(server, UPSERT, "UpsertBucket", {"name": "stoppable", "project": "raw"})
    url = server.url + "/files/alice/raw/stoppable/file_stream"
    assert "stopped" not in httpx.post(url, json={}, headers=server.headers()).json()  # a heartbeat
    server.store.request_stop(server.store.require_run("alice", "raw", "stoppable"))
    assert httpx.post(url, json={}, headers=server.headers()).json()["stopped"] is True
    missing = httpx.post(server.url + "/files/alice/raw/nope/file_stream", json={}, headers=server.headers())
    assert missing.status_code == 404 and missing.json()["errors"]


def test_upload_urls_are_signed(server: Server) -> None:
    _gql(server, UPSERT, "UpsertBucket", {"name": "files", "project": "raw"})
    query = """mutation CreateRunFiles($entity: String!, $project: String!, $run: String!, $files: [String!]!) {
      createRunFiles(input: {entityName: $entity, projectName: $project, runName: $run, files: $files}) {
        runID uploadHeaders files { name uploadUrl } } }"""
    variables = {"entity": "alice", "project": "raw", "run": "files", "files": ["media/images/a.png", "b.txt"]}
    files = _gql(server, query, "CreateRunFiles", variables).json()["data"]["createRunFiles"]["files"]
    assert [f["name"] for f in files] == ["media/images/a.png", "b.txt"]
    upload = files[0]["uploadUrl"]
    assert httpx.put(upload, content=b"\x89PNG...").status_code == 200  # no credentials needed
    forged = upload[:-3] + ("AAA" if not upload.endswith("AAA") else "BBB")
    assert httpx.put(forged, content=b"evil").status_code == 403
    run = server.store.require_run("alice", "raw", "files")
    listed = {f["path"]: f["size"] for f in server.store.files(run.incarnation_id)}
    assert listed == {"media/images/a.png": 7}


SURVIVOR = """
import time
import wandb
settings = wandb.Settings(
    x_file_stream_transmit_interval=0.5,
    x_file_stream_retry_wait_min_seconds=0.5,  # retry often while the server restarts, not after minutes
    x_file_stream_retry_wait_max_seconds=2,
    x_graphql_retry_wait_min_seconds=0.5,
    x_graphql_retry_wait_max_seconds=2,
)
run = wandb.init(project="kill", id="survivor", settings=settings)
for i in range(60):
    run.log({"x": float(i)})
    time.sleep(0.1)
    if i == 15:
        open("killme", "w").close()
run.finish()
"""


def test_a_server_killed_mid_run_loses_and_duplicates_nothing(any_server: Server) -> None:
    server = any_server
    (proc,) = start_clients([SURVIVOR], server)
    cwd = max(server.workdir.glob("client*"), key=lambda p: int(p.name.removeprefix("client")))
    deadline = time.monotonic() + 120
    while not (cwd / "killme").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert (cwd / "killme").exists(), proc.stdout.read() if proc.stdout and proc.poll() is not None else ""
    server.process.kill()  # SIGKILL: nothing is flushed or closed
    time.sleep(1.0)
    server.process.start()
    wait_clients([proc], server)
    run = server.store.require_run("alice", "kill", "survivor")
    steps, values = server.store.read_series(run.incarnation_id, "x")
    assert steps.tolist() == list(range(60)) and values.tolist() == [float(i) for i in range(60)]
    assert run.state == "finished"
