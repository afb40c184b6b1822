"""The one HTTP client: retries with backoff and `Retry-After`, bounds, headers and error mapping.

Everything runs against a real HTTP server on a loopback port that answers from a script (e.g.
503 with `Retry-After`, then 200), so the retry policy is exercised over real sockets.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgpack
import pytest

from branchline import __version__
from branchline.api.remote import RemoteBackend
from branchline.artifacts.errors import ArtifactIntegrityError, ArtifactNotFoundError
from branchline.artifacts.http import HttpArtifactBackend, upload_run_file
from branchline.errors import AuthenticationError, CommError, RunNotFoundError, UsageError
from branchline.http_client import INTERACTIVE, NO_RETRY, HttpClient, RetryPolicy
from branchline.sdk.http_sink import HttpSink

FAST = RetryPolicy(attempts=5, seconds=5.0, base=0.01, max_backoff=0.02)


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Script:
    """Answers in order (the last one repeats) and remembers every request it saw."""

    def __init__(self) -> None:
        self.answers: list[Answer] = [Answer(body={"ok": True})]
        self.seen: list[Seen] = []
        self.lock = threading.Lock()

    def play(self, *answers: Answer) -> None:
        with self.lock:
            self.answers = list(answers)
            self.seen = []

    def next(self, seen: Seen) -> Answer:
        with self.lock:
            self.seen.append(seen)
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if self.headers.get("Transfer-Encoding") == "chunked":
                body = self._chunked()
            else:
                body = self.rfile.read(length) if length else b""
            seen = Seen(
                self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()
            )
            answer = script.next(seen)
            if answer.content_type == "application/msgpack":
                payload = msgpack.packb(answer.body)
            else:
                payload = b"" if answer.body is None else json.dumps(answer.body).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def _chunked(self) -> bytes:
            out = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                chunk = self.rfile.read(size + 2)[:size]
                if size == 0:
                    return out
                out += chunk

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    return Handler


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, Script]]:
    script = Script()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", script
    finally:
        server.shutdown()
        server.server_close()


def _error(status: int, code: str, message: str, **headers: str) -> Answer:
    return Answer(status, {"error": {"code": code, "message": message}}, headers)


def test_503_with_retry_after_is_waited_out_then_succeeds(served: tuple[str, Script]) -> None:
    url, script = served
    script.play(_error(503, "unavailable", "restarting", **{"Retry-After": "0.4"}), Answer(body={"hello": 1}))
    with HttpClient(url, retry=FAST) as client:
        assert client.request("GET", "/ping").json() == {"hello": 1}
    first, second = script.seen
    # The server's wait is honoured exactly, not the policy's much shorter backoff.
    assert 0.35 <= second.at - first.at < 2.0


def test_retry_after_as_an_http_date(served: tuple[str, Script]) -> None:
    url, script = served
    when = email.utils.formatdate(time.time() + 1.2, usegmt=True)
    script.play(_error(429, "rate_limited", "slow down", **{"Retry-After": when}), Answer(body={}))
    with HttpClient(url, retry=FAST) as client:
        client.request("POST", "/ping", json={"a": 1})
    first, second = script.seen
    assert second.at - first.at >= 0.1  # a date a second ahead (rounded to whole seconds) is waited for
    assert json.loads(second.body) == {"a": 1}  # the body is sent again


def test_attempts_are_bounded(served: tuple[str, Script]) -> None:
    url, script = served
    script.play(_error(502, "bad_gateway", "proxy down"))
    with HttpClient(url, retry=FAST) as client, pytest.raises(CommError, match=r"after 5 attempt.*proxy down"):
        client.request("GET", "/ping")
    assert len(script.seen) == 5


def test_total_time_is_bounded_even_when_the_server_asks_for_longer(served: tuple[str, Script]) -> None:
    url, script = served
    script.play(_error(503, "unavailable", "busy", **{"Retry-After": "30"}))
    started = time.monotonic()
    policy = RetryPolicy(attempts=None, seconds=0.6)
    with HttpClient(url, retry=policy) as client, pytest.raises(CommError, match="busy"):
        client.request("GET", "/ping")
    assert time.monotonic() - started < 3.0
    assert len(script.seen) == 2  # one try, the budget's wait, one last try


def test_backoff_grows_with_full_jitter_below_the_cap() -> None:
    policy = RetryPolicy(base=0.25, max_backoff=2.0)
    draws = [[policy.backoff(attempt) for _ in range(200)] for attempt in (1, 2, 3, 6)]
    assert all(0.0 < d <= 0.5 for d in draws[0]) and max(draws[0]) < max(draws[2])
    assert all(d <= 2.0 for d in draws[3]) and len(set(draws[3])) > 100  # jittered, capped


def test_connection_errors_are_retried_until_the_server_answers() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = Script()
    started = threading.Event()

    def late_server() -> None:
        time.sleep(0.5)
        server = ThreadingHTTPServer(("127.0.0.1", port), _handler(script))
        holder.append(server)
        started.set()
        server.serve_forever()

    holder: list[ThreadingHTTPServer] = []
    threading.Thread(target=late_server, daemon=True).start()
    policy = RetryPolicy(attempts=None, seconds=10.0, base=0.05, max_backoff=0.2)
    try:
        with HttpClient(f"http://127.0.0.1:{port}", retry=policy) as client:
            assert client.request("GET", "/ping").json() == {"ok": True}
    finally:
        started.wait(5)
        holder[0].shutdown()
        holder[0].server_close()


def test_connection_refused_gives_up_with_comm_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    retries: list[int] = []
    with (
        HttpClient(f"http://127.0.0.1:{port}", retry=FAST) as client,
        pytest.raises(CommError, match=r"after 5 attempt.*ConnectError"),
    ):
        client.request("GET", "/ping", on_retry=lambda: retries.append(1))
    assert len(retries) == 4


def test_a_set_stop_event_ends_retries_at_once(served: tuple[str, Script]) -> None:
    url, script = served
    script.play(_error(503, "unavailable", "busy", **{"Retry-After": "20"}))
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with HttpClient(url, retry=RetryPolicy(attempts=None, seconds=60)) as client, pytest.raises(CommError):
        client.request("GET", "/ping", stop=stop)
    assert time.monotonic() - started < 5.0


def test_streamed_bodies_are_resent_from_the_start(served: tuple[str, Script]) -> None:
    url, script = served
    script.play(_error(500, "internal", "oops"), Answer(body={}))
    with HttpClient(url, retry=FAST) as client:
        client.request("PUT", "/blob", content=lambda: iter([b"abc", b"def"]))
    assert [s.body for s in script.seen] == [b"abcdef", b"abcdef"]


def test_headers_name_the_version_and_carry_the_key(served: tuple[str, Script]) -> None:
    url, script = served
    script.play(Answer(body={}))
    with HttpClient(url + "/", "secret-key", agent="branchline-api", prefix="/api/v1/store") as client:
        client.request("GET", "/x", params={"a": 1, "b": None})
    seen = script.seen[0]
    assert seen.path == "/api/v1/store/x?a=1"  # None parameters are left out
    assert seen.headers["authorization"] == "Bearer secret-key"
    assert seen.headers["user-agent"] == f"branchline-api/{__version__}"


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (_error(401, "unauthorized", "bad key"), AuthenticationError, "did not accept the API key: bad key"),
        (_error(403, "forbidden", "not a member"), AuthenticationError, "refused the request: not a member"),
        (_error(404, "run_not_found", "no run a/b/c"), RunNotFoundError, "no run a/b/c"),
        (_error(404, "not_found", "no such page"), CommError, "HTTP 404: no such page"),
        (_error(422, "invalid_request", "name too long"), UsageError, "name too long"),
        (Answer(418, {"detail": "teapot"}), CommError, "HTTP 418: teapot"),
    ],
)
def test_error_answers_map_to_branchline_errors(
    served: tuple[str, Script], answer: Answer, error: type[Exception], message: str
) -> None:
    url, script = served
    script.play(answer)
    with HttpClient(url, retry=FAST) as client, pytest.raises(error, match=message):
        client.request("GET", "/x")
    assert len(script.seen) == 1  # client errors are not retried


def test_callers_map_404_and_their_own_codes(served: tuple[str, Script]) -> None:
    url, script = served
    backend = HttpArtifactBackend(url, None, "e", "p")
    try:
        script.play(_error(404, "not_found", "no collection"))
        with pytest.raises(ArtifactNotFoundError, match="no collection"):
            backend.versions("e", "p", "model")
        script.play(_error(400, "digest_mismatch", "bytes differ"))
        with pytest.raises(ArtifactIntegrityError, match="bytes differ"):
            backend.record_use("v1", "i1")
    finally:
        backend.close()


def test_sink_rides_out_a_restart(served: tuple[str, Script]) -> None:
    url, script = served
    script.play(
        _error(503, "unavailable", "restarting", **{"Retry-After": "0.2"}),
        Answer(body={"username": "alice", "default_entity": "alice"}),
    )
    sink = HttpSink(url, "k", retry_seconds=5.0)
    try:
        assert sink.viewer()["username"] == "alice"
    finally:
        sink.close()
    assert len(script.seen) == 2 and script.seen[1].headers["user-agent"].startswith("branchline-sdk/")


def test_sink_heartbeat_tries_once(served: tuple[str, Script]) -> None:
    url, script = served
    script.play(_error(503, "unavailable", "restarting"))
    sink = HttpSink(url, None)
    try:
        with pytest.raises(CommError):
            sink.heartbeat("i1")
    finally:
        sink.close()
    assert len(script.seen) == 1


def test_remote_api_waits_before_retrying(served: tuple[str, Script]) -> None:
    url, script = served
    script.play(
        _error(502, "bad_gateway", "proxy", **{"Retry-After": "0.3"}),
        Answer(body={"count": 7}, content_type="application/msgpack"),
    )
    remote = RemoteBackend(url, "k")
    try:
        assert remote.count_runs("e", "p") == 7
    finally:
        remote.close()
    first, second = script.seen
    assert second.at - first.at >= 0.25 and second.path == "/api/v1/store/runs/e/p/count"


def test_uploads_retry_then_succeed(served: tuple[str, Script], tmp_path: Path) -> None:
    url, script = served
    data = b"x" * 5000
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    script.play(_error(503, "unavailable", "busy", **{"Retry-After": "0"}), Answer(body={}))
    retried: list[int] = []
    backend = HttpArtifactBackend(url, None, "e", "p")
    try:
        digest = hashlib.sha256(data).hexdigest()
        upload_run_file(backend, "i1", "out/f.bin", str(path), digest, on_retry=lambda: retried.append(1))
    finally:
        backend.close()
    assert [s.body for s in script.seen] == [data, data] and retried == [1]
    assert script.seen[0].path.startswith("/api/v1/artifacts/files/i1/out/f.bin?sha256=")


def test_policies_order_interactive_below_the_writer_budget() -> None:
    assert NO_RETRY.attempts == 1
    assert INTERACTIVE.attempts is not None and INTERACTIVE.seconds <= 15.0
