"""Bad input never reaches PostgreSQL as a 500: a real `branchline server` on a fresh PostgreSQL database.

Every case is sent over one keep-alive connection and must answer a 4xx in the API's one error
shape naming the field at fault, on the same connection (a 500 makes the server drop it), and
the next request on that connection must work. A pooled connection PostgreSQL terminates is
replaced without the client seeing an error.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import msgpack
import pytest

from branchline.store import open_store
from tests.backends import ServerProcess
from tests.store_factory import PG_URL, add_run, pg_available

pytestmark = pytest.mark.postgres

ENTITY, PROJECT, RUN_ID = "u", "p", "r"


@dataclass
class Served:
    server: ServerProcess
    client: httpx.Client
    database: str
    incarnation_id: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server on its own PostgreSQL database (created here, dropped afterwards), one seeded run."""
    if not pg_available():
        pytest.skip(f"PostgreSQL is not reachable at {PG_URL}")
    import psycopg

    database = f"bl_bad_{uuid.uuid4().hex[:12]}"
    admin = PG_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    url = PG_URL.rsplit("/", 1)[0] + "/" + database
    workdir = tmp_path_factory.mktemp("bad-input")
    server: ServerProcess | None = None
    try:
        with open_store(url) as store:
            store.create_user(ENTITY)
            key = store.create_api_key(ENTITY)[1]
            add_run(
                store,
                entity=ENTITY,
                project=PROJECT,
                run_id=RUN_ID,
                history=[(s, {"loss": 1.0 / (s + 1)}) for s in range(20)],
            )
            view = store.get_run(ENTITY, PROJECT, RUN_ID)
            assert view is not None
            incarnation_id = view.incarnation_id
        storage = {"BRANCHLINE_ARTIFACT_STORAGE": (workdir / "blobs").as_uri()}
        server = ServerProcess(url, workdir, extra_env=storage)
        server.start()
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as client:
            yield Served(server, client, database, incarnation_id)
    finally:
        if server is not None:
            server.stop()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _local_port(response: httpx.Response) -> int:
    stream = response.extensions["network_stream"]
    return int(stream.get_extra_info("client_addr")[1])


def refused(
    served: Served, method: str, url: str, field: str, *, status: int | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Send one bad request; it must answer `status` (any 4xx when None) naming `field`, and leave
    the connection usable."""
    client = served.client
    before = client.get("/api/v1/health")
    assert before.status_code == 200
    port = _local_port(before)
    response = client.request(method, url, **kwargs)
    if status is None:
        assert 400 <= response.status_code < 500, response.text[:2000]
    else:
        assert response.status_code == status, response.text[:2000]
    error = response.json()["error"]
    assert error.get("field") == field, error
    assert error["code"] != "internal"
    after = client.get("/api/v1/health")
    assert after.status_code == 200
    assert _local_port(response) == port == _local_port(after), "the server dropped the keep-alive connection"
    return dict(error)


RUNS = f"/api/v1/runs/{ENTITY}/{PROJECT}"
SERIES = f"{RUNS}/{RUN_ID}/series"


# -- NUL bytes ----------------------------------------------------------------------------------------
def test_nul_in_run_id_path(served: Served) -> None:
    refused(served, "GET", f"{RUNS}/r%00x", "run_id")


def test_nul_in_project_path(served: Served) -> None:
    refused(served, "GET", f"/api/v1/runs/{ENTITY}/p%00x", "project")


def test_nul_in_store_api_run_path(served: Served) -> None:
    refused(served, "GET", f"/api/v1/store/runs/{ENTITY}/{PROJECT}/r%00x", "run_id")


def test_nul_in_series_key_query(served: Served) -> None:
    refused(served, "GET", SERIES, "keys", params={"keys": "lo\x00ss"})


def test_nul_in_series_key_body(served: Served) -> None:
    body = {"incarnations": [served.incarnation_id], "keys": ["lo\x00ss"]}
    refused(served, "POST", "/api/v1/series", "keys.0", json=body)


def test_nul_in_store_api_key_query(served: Served) -> None:
    url = f"/api/v1/store/incarnations/{served.incarnation_id}/series"
    refused(served, "GET", url, "key", params={"key": "lo\x00ss"})


def test_nul_in_filter_key(served: Served) -> None:
    error = refused(served, "GET", RUNS, "filters", params={"filters": json.dumps({"config.a\x00b": 1})})
    assert "NUL" in error["message"]


def test_nul_in_filter_value(served: Served) -> None:
    error = refused(served, "GET", RUNS, "filters", params={"filters": json.dumps({"display_name": "a\x00"})})
    assert "NUL" in error["message"]


def test_nul_in_store_api_filter(served: Served) -> None:
    body = {"filters": {"config.a": {"$in": ["x", "y\x00"]}}}
    refused(served, "POST", f"/api/v1/store/runs/{ENTITY}/{PROJECT}/query", "filters", json=body)


def test_nul_in_artifact_entry_path(served: Served) -> None:
    body = _commit_body("a\x00b")
    refused(served, "POST", f"/api/v1/artifacts/{ENTITY}/{PROJECT}/commit", "entries.0.path", json=body)


def test_nul_in_run_file_path(served: Served) -> None:
    url = f"/api/v1/artifacts/files/{served.incarnation_id}/a%00b"
    refused(served, "PUT", url, "path", params={"sha256": "0" * 64, "register": "true"}, content=b"x")


def test_nul_in_store_api_name(served: Served) -> None:
    url = f"/api/v1/store/incarnations/{served.incarnation_id}"
    refused(served, "PATCH", url, "name", json={"name": "x\x00y"})


def test_nul_in_store_api_config_is_cleaned_like_begin(served: Served) -> None:
    """A config value gets the rule `begin` applies: NUL becomes U+FFFD, the edit is stored."""
    url = f"/api/v1/store/incarnations/{served.incarnation_id}"
    response = served.client.patch(url, json={"config": {"label": "x\x00y"}})
    assert response.status_code == 200, response.text
    assert msgpack.unpackb(served.client.get(url).content)["config"]["label"] == "x\ufffdy"


# -- other values the database cannot take ------------------------------------------------------------
def test_empty_series_key(served: Served) -> None:
    refused(served, "GET", f"{SERIES}?keys=", "keys.0")


def test_invalid_regex_filter(served: Served) -> None:
    filters = {"display_name": {"$regex": "(unclosed"}}
    error = refused(served, "GET", RUNS, "filters", params={"filters": json.dumps(filters)})
    assert "$regex" in error["message"]


def test_huge_integer_in_filter(served: Served) -> None:
    error = refused(served, "GET", RUNS, "filters", params={"filters": json.dumps({"config.a": 2**80})})
    assert "64-bit" in error["message"]


def test_huge_integer_in_store_api_filter(served: Served) -> None:
    body = {"filters": {"summary_metrics.loss": {"$gt": 2**80}}}
    refused(served, "POST", f"/api/v1/store/runs/{ENTITY}/{PROJECT}/count", "filters", json=body)


def _nested(depth: int) -> str:
    return '{"$and": [' * depth + '{"config.a": 1}' + "]}" * depth


@pytest.mark.parametrize("route", ["query", "count"])
def test_deeply_nested_filter(served: Served, route: str) -> None:
    url = f"/api/v1/store/runs/{ENTITY}/{PROJECT}/{route}"
    json_headers = {"Content-Type": "application/json"}
    error = refused(
        served, "POST", url, "filters", status=400, content='{"filters": ' + _nested(300) + "}", headers=json_headers
    )
    assert "deep" in error["message"]
    # Deeper than the JSON parser goes: the body itself is refused.
    refused(served, "POST", url, "body", status=400, content='{"filters": ' + _nested(2000) + "}", headers=json_headers)


def test_deeply_nested_filter_query_param(served: Served) -> None:
    error = refused(served, "GET", RUNS, "filters", status=400, params={"filters": _nested(300)})
    assert "deep" in error["message"]
    refused(served, "GET", RUNS, "filters", params={"filters": _nested(2000)})


def test_big_integer_cannot_be_stored_where_it_cannot_be_read_back(served: Served) -> None:
    """msgpack carries 64-bit integers only: a bigger one would be stored, then fail every read."""
    url = f"/api/v1/store/incarnations/{served.incarnation_id}"
    error = refused(served, "PATCH", url, "config", json={"config": {"big": 2**80}})
    assert "64-bit" in error["message"]
    read = served.client.get(url)
    assert read.status_code == 200
    assert "big" not in msgpack.unpackb(read.content)["config"]


# -- sizes and paths ----------------------------------------------------------------------------------
def _begin_body(**extra: Any) -> dict[str, Any]:
    ids = uuid.uuid4().hex[:16]
    return {
        "entity": ENTITY,
        "project": PROJECT,
        "run_id": "big-" + ids,
        "incarnation_id": "i" + ids,
        "session_id": "s" + ids,
        **extra,
    }


def test_begin_body_has_a_limit(served: Served) -> None:
    config = {f"k{i}": "x" * 1000 for i in range(60_000)}  # about 60 MB
    error = refused(served, "POST", "/api/v1/runs/begin", "body", status=413, json=_begin_body(config=config))
    assert "bytes" in error["message"]
    ok = served.client.post("/api/v1/runs/begin", json=_begin_body(config={"lr": 0.1}))
    assert ok.status_code == 200, ok.text


def _commit_body(path: str) -> dict[str, Any]:
    entry = {"path": path, "digest": "d" * 8, "ref": "s3://bucket/key", "size": 1}
    return {"name": "model", "type": "model", "digest": uuid.uuid4().hex, "entries": [entry]}


@pytest.mark.parametrize("path", ["../../x", "/etc/passwd", "a/../../x", "a\\..\\x", ""])
def test_artifact_entry_path_outside_the_artifact(served: Served, path: str) -> None:
    error = refused(
        served, "POST", f"/api/v1/artifacts/{ENTITY}/{PROJECT}/commit", "entries.0.path", json=_commit_body(path)
    )
    assert "entry path" in error["message"]


@pytest.mark.parametrize("path", ["a\\b.txt", "%5C..%5Cx", "a//b", "a/%2E%2E/%2E%2E/x", "%2Fetc%2Fpasswd"])
def test_run_file_upload_refuses_bad_paths(served: Served, path: str) -> None:
    url = f"/api/v1/artifacts/files/{served.incarnation_id}/{path}"
    refused(served, "PUT", url, "path", params={"sha256": "0" * 64, "register": "true"}, content=b"x")


def test_run_file_upload_refuses_an_empty_path(served: Served) -> None:
    url = f"/api/v1/artifacts/files/{served.incarnation_id}/"
    refused(served, "PUT", url, "path", params={"sha256": "0" * 64, "register": "true"}, content=b"x")


# -- the database drops a pooled connection -----------------------------------------------------------
def test_request_after_postgres_drops_the_pooled_connections(served: Served) -> None:
    import psycopg

    client = served.client
    assert client.get(f"{RUNS}/{RUN_ID}").status_code == 200
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (served.database,),
        ).fetchall()
    assert rows, "the server held no connection to terminate"
    begun = client.post("/api/v1/runs/begin", json=_begin_body(config={"lr": 0.1}))
    assert begun.status_code == 200, begun.text
    session = begun.request.read()
    session_id = json.loads(session)["session_id"]
    for attempt in range(3):  # every pooled connection is gone: each kind of request must still succeed
        _terminate_server_connections(served.database)
        assert client.get(f"{RUNS}/{RUN_ID}").status_code == 200
        _terminate_server_connections(served.database)
        assert client.get(RUNS).status_code == 200
        _terminate_server_connections(served.database)
        body = {"incarnations": [served.incarnation_id], "keys": ["loss"]}
        assert client.post("/api/v1/series", json=body).status_code == 200
        _terminate_server_connections(served.database)
        store_url = f"/api/v1/store/incarnations/{served.incarnation_id}/series"
        assert client.get(store_url, params={"key": "loss"}).status_code == 200
        _terminate_server_connections(served.database)
        records = {"records": [[attempt + 1, 1, attempt, 0.0, 0.0, [["loss", float(attempt)]]]]}
        sent = client.post(f"/api/v1/sessions/{session_id}/records", json=records)
        assert sent.status_code < 500, sent.text


def _terminate_server_connections(database: str) -> int:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return len(rows)


def test_connections_terminated_during_requests_never_answer_500(served: Served) -> None:
    """PostgreSQL terminating the server's connections every 100 ms, mid-query included: a read is
    retried on a fresh connection, anything else answers 503 with Retry-After; never a 500, never
    a dropped keep-alive connection."""
    import threading

    stop = threading.Event()

    def terminate_until_stopped() -> None:
        while not stop.is_set():
            _terminate_server_connections(served.database)
            stop.wait(0.1)

    killer = threading.Thread(target=terminate_until_stopped)
    killer.start()
    answers: dict[tuple[str, int], int] = {}
    try:
        port = _local_port(served.client.get("/api/v1/health"))
        for _ in range(60):
            for method, url, body in (
                ("GET", f"{RUNS}/{RUN_ID}", None),
                ("GET", RUNS, None),
                ("POST", "/api/v1/series/keys", {"incarnations": [served.incarnation_id]}),
            ):
                response = served.client.request(method, url, json=body)
                answer = (method, response.status_code)
                answers[answer] = answers.get(answer, 0) + 1
                assert response.status_code in (200, 503), response.text
                if response.status_code == 503:
                    assert response.headers["Retry-After"] == "1"
                assert _local_port(response) == port, "the server dropped the keep-alive connection"
    finally:
        stop.set()
        killer.join()
    reads = answers.get(("GET", 200), 0) + answers.get(("GET", 503), 0)
    # A read is retried on a fresh connection: it answers 503 only when the retry is terminated too.
    assert answers.get(("GET", 200), 0) > reads / 2, answers
