"""Property-based fuzzing of every `/api/v1` operation from the OpenAPI schema (schemathesis).

A real server process answers generated requests, valid and invalid; no answer may be a 5xx or
disagree with the documented response schema. Bounded: a few examples per operation (< 60 s).
The batch checks the fuzzer cannot aim at precisely (sizes, sequence numbers) are spelled out
below it.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import FlakyStrategyDefinition, Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis import checks as st_checks  # noqa: E402

from branchline.store import open_store  # noqa: E402
from tests.store_factory import add_run  # noqa: E402
from tests.test_server_remote import ServerProcess  # noqa: E402

#: Examples per operation: valid-looking (positive) and invalid (negative) inputs. Negative ones are
#: slower to generate, so fewer; raise both with BRANCHLINE_FUZZ_EXAMPLES for a longer soak.
MAX_EXAMPLES = int(os.environ.get("BRANCHLINE_FUZZ_EXAMPLES", "8"))
NEGATIVE_EXAMPLES = max(2, MAX_EXAMPLES // 3)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    workdir = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{workdir / 'store.db'}"
    with open_store(url) as store:
        store.create_user("fuzzer")
        key = store.create_api_key("fuzzer")[1]
        add_run(store, entity="fuzzer", project="p", run_id="r", history=[(s, {"loss": float(s)}) for s in range(50)])
    server = ServerProcess(url, workdir)
    server.start()
    try:
        yield server, key
    finally:
        server.stop()


_SEEDED = {"entity": "fuzzer", "project": "p", "run_id": "r"}
_CHECKS = [st_checks.not_a_server_error, st_checks.response_schema_conformance]
# Documented statuses are each handler's own; the shared auth and validation answers (one error
# shape) are checked by tests/test_server_auth.py and the batch test below.
_EXCLUDED = [
    st_checks.status_code_conformance,
    st_checks.negative_data_rejection,
    st_checks.positive_data_acceptance,
    st_checks.ignored_auth,
    st_checks.use_after_free,
    st_checks.ensure_resource_availability,
    st_checks.missing_required_header,
    st_checks.unsupported_method,
]


def test_no_server_errors_and_no_schema_violations(fuzz_server: tuple[ServerProcess, str]) -> None:
    """Every operation, valid and invalid inputs: no 5xx, answers match the documented schema."""
    server, key = fuzz_server
    schema = schemathesis.openapi.from_url(server.base_url + "/api/v1/openapi.json")
    headers = {"Authorization": f"Bearer {key}"}
    failures: list[str] = []
    timings: list[tuple[float, str]] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        # Positive cases aim at the seeded run, so they get past authorization into the handlers;
        # negative ones keep random paths (and mostly stop at validation or at 403).
        names = set(re.findall(r"\{(\w+)", operation.path))
        aimed = {k: v for k, v in _SEEDED.items() if k in names}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            examples = MAX_EXAMPLES if mode == GenerationMode.POSITIVE else NEGATIVE_EXAMPLES

            @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            @given(
                case=operation.as_strategy(
                    generation_mode=mode, path_parameters=aimed if mode == GenerationMode.POSITIVE else None
                )
            )
            def check(case: Any) -> None:
                case.call_and_validate(
                    base_url=server.base_url, headers=headers, checks=_CHECKS, excluded_checks=_EXCLUDED
                )

            began = time.monotonic()
            try:
                try:
                    check()
                except FlakyStrategyDefinition:
                    # Hypothesis's own generator drew differently between two cases (seen with
                    # schemathesis's negative query strategies): no request was judged, so draw anew.
                    check()
            except Unsatisfiable:
                pass  # no parameters to get wrong (e.g. GET /health in negative mode)
            except Exception as exc:  # collect every operation's failure, then report them all
                failures.append(f"{operation.label} ({mode.value}): {exc}"[:3000])
            timings.append((time.monotonic() - began, f"{operation.label} {mode.value}"))
    print("slowest operations:", sorted(timings, reverse=True)[:6])
    assert operations >= 30
    assert not failures, "\n\n".join(failures)


# -- batches: sizes, sequence numbers, unknown sessions ------------------------------------------------
def _begin(server: ServerProcess, key: str) -> str:
    session = secrets.token_hex(8)
    spec = {
        "entity": "fuzzer",
        "project": "batches",
        "run_id": secrets.token_hex(4),
        "incarnation_id": secrets.token_hex(8),
        "session_id": session,
        "started_at": time.time(),
    }
    response = httpx.post(server.base_url + "/api/v1/runs/begin", json=spec, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return session


def _post(server: ServerProcess, key: str, session: str, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/api/v1/sessions/{session}/records",
        content=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/msgpack", **headers},
        timeout=60,
    )


def test_bad_batches_get_clear_4xx(fuzz_server: tuple[ServerProcess, str]) -> None:
    server, key = fuzz_server
    session = _begin(server, key)

    def records(*rows: list[Any]) -> bytes:
        packed: bytes = msgpack.packb(list(rows))
        return packed

    ok = [1, 2, 0, time.time(), 0.1, {"loss": 1.0}]
    assert _post(server, key, session, records(ok)).json() == {"applied_seq": 1}
    assert _post(server, key, session, records(ok)).json() == {"applied_seq": 1}  # idempotent

    cases: list[tuple[bytes, int, str]] = [
        (records(["one", 2, 0, 1.0, 1.0, {}]), 422, "sequence number"),
        (records([-5, 2, 0, 1.0, 1.0, {}]), 422, "sequence number"),
        (records([2**40, 2, 0, 1.0, 1.0, {}]), 422, "sequence number"),
        (records([3, 2, 0, 1.0, 1.0, {}], [3, 2, 1, 1.0, 1.0, {}]), 422, "strictly increase"),
        (records([5, 99, 0]), 422, "unknown record kind"),
        (records([5, 2, "step", 1.0, 1.0, {}]), 422, "step"),
        (records([5, 2, 0, 1.0, 1.0, {"k" * 600: 1.0}]), 422, "longer than 512"),
        (records([5, 7, 0, "exploded", 1.0]), 422, "state"),
        (b"\xc1\xc1not msgpack", 400, "not valid msgpack"),
    ]
    for body, status, words in cases:
        response = _post(server, key, session, body)
        assert response.status_code == status, (words, response.text)
        assert words in response.json()["error"]["message"], response.text

    too_many = msgpack.packb([[i + 10, 6, {}] for i in range(50_001)])
    response = _post(server, key, session, too_many)
    assert response.status_code == 413 and "at most 50000 records" in response.json()["error"]["message"]
    huge = b"\x00" * (33 * 1024 * 1024)
    response = _post(server, key, session, huge)
    assert response.status_code == 413 and "limit is" in response.json()["error"]["message"]
    bomb = gzip.compress(b"\x00" * (130 * 1024 * 1024), compresslevel=1)
    response = _post(server, key, session, bomb, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413 and "decompresses" in response.json()["error"]["message"]

    response = _post(server, key, "no-such-session", records(ok))
    assert response.status_code == 404 and "Unknown writer session" in response.json()["error"]["message"]
    response = httpx.post(
        f"{server.base_url}/api/v1/incarnations/nope/heartbeat", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 404

    # JSON batches work as well, and nothing above was stored.
    response = httpx.post(
        f"{server.base_url}/api/v1/sessions/{session}/records",
        content=json.dumps({"records": [[2, 2, 1, time.time(), 0.2, {"loss": 0.5}]]}),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert response.json() == {"applied_seq": 2}
    with open_store(server.store_url) as store:
        owner = store.session_owner(session)
        assert owner is not None
        steps, values = store.read_series(owner[2], "loss")
        assert list(steps) == [0, 1] and list(values) == [1.0, 0.5]


def test_fuzz_server_log_has_no_tracebacks(fuzz_server: tuple[ServerProcess, str]) -> None:
    server, _ = fuzz_server
    log: Path = server.log
    assert "Traceback" not in log.read_text()


def test_commit_with_a_digest_that_is_not_sha256_is_a_clear_422(fuzz_server: tuple[ServerProcess, str]) -> None:
    server, key = fuzz_server
    headers = {"Authorization": f"Bearer {key}"}
    for digest in ("\u00f1X\x00\u00b6", "../../etc/passwd", "A" * 64):
        body = {"name": "ds", "type": "dataset", "digest": "d", "entries": [{"path": "f.txt", "digest": digest}]}
        response = httpx.post(f"{server.base_url}/api/v1/artifacts/fuzzer/p/commit", json=body, headers=headers)
        assert response.status_code == 422, response.text
        assert "sha256" in response.json()["error"]["message"]
    # A reference keeps whatever digest its storage gave it (an ETag, say).
    ref = {"path": "r", "digest": "etag-1", "ref": "s3://bucket/key"}
    body = {"name": "refs", "type": "dataset", "digest": "d2", "entries": [ref]}
    response = httpx.post(f"{server.base_url}/api/v1/artifacts/fuzzer/p/commit", json=body, headers=headers)
    assert response.status_code == 200, response.text


def test_commit_metadata_with_a_lone_surrogate_is_a_clear_422(fuzz_server: tuple[ServerProcess, str]) -> None:
    server, key = fuzz_server
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    url = f"{server.base_url}/api/v1/artifacts/fuzzer/p/commit"
    bodies = [
        '{"name": "m1", "type": "dataset", "digest": "d", "entries": [], "metadata": {"note": ["ok", "\\ud800"]}}',
        '{"name": "m2", "type": "dataset", "digest": "d", "entries": [], "metadata": {"\\udc80": 1}}',
        '{"name": "m3", "type": "dataset", "digest": "d",'
        ' "entries": [{"path": "a", "digest": "e", "ref": "s3://b/a", "extra": {"x": "\\udfff"}}]}',
    ]
    for body in bodies:
        response = httpx.post(url, content=body, headers=headers)
        assert response.status_code == 422, response.text
        assert "lone surrogate" in response.json()["error"]["message"]
    listed = httpx.get(f"{server.base_url}/api/v1/artifacts/fuzzer/p/collections/m1/versions", headers=headers)
    assert listed.status_code in (200, 404) and "m1" not in listed.text  # nothing was committed


def test_artifact_names_types_and_aliases_follow_the_sdks_rules(fuzz_server: tuple[ServerProcess, str]) -> None:
    server, key = fuzz_server
    headers = {"Authorization": f"Bearer {key}"}
    url = f"{server.base_url}/api/v1/artifacts/fuzzer/p/commit"
    bad = [
        ({"name": "has space"}, "name", "Invalid artifact name"),
        ({"name": "a/b"}, "name", "Invalid artifact name"),
        ({"name": "x" * 129}, "name", "the limit is 128"),
        ({"type": "data:set"}, "type", "Invalid artifact type"),
        ({"aliases": ["v3"]}, "aliases", "names a version"),
        ({"aliases": ["best/one"]}, "aliases", "Invalid artifact alias"),
    ]
    for change, field, words in bad:
        body = {"name": "ok-name", "type": "dataset", "digest": "d", "entries": [], **change}
        response = httpx.post(url, json=body, headers=headers)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert words in error["message"] and field in error["field"], error
    good = {"name": "ok-name.v1_x", "type": "dataset", "digest": "d", "entries": [], "aliases": ["best"]}
    created = httpx.post(url, json=good, headers=headers)
    assert created.status_code == 200, created.text
    version_id = msgpack.unpackb(created.content)["version"]["id"]  # the artifact API answers in msgpack
    edit = f"{server.base_url}/api/v1/artifacts/versions/{version_id}/aliases"
    refused = httpx.put(edit, json={"aliases": ["v0"]}, headers=headers)
    assert refused.status_code == 422 and "names a version" in refused.json()["error"]["message"]
