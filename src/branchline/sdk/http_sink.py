"""`HttpSink`: the writer's sink for a branchline server (`/api/v1`, see server/ingest.py).

It runs in the writer process (and once in `init` for `begin_run`), never on the training thread.
Record batches go as gzip-compressed msgpack over one keep-alive connection. Network errors, 5xx
and 429 are retried with exponential backoff and full jitter (honouring `Retry-After`) within a
time budget; after that the call raises and the writer keeps the records in the journal and tries
again later. Applying is idempotent on (session, sequence), so a retry never duplicates.
"""

from __future__ import annotations

import email.utils
import random
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import msgpack

from branchline import __version__
from branchline.errors import AuthenticationError, CommError, RunNotFoundError, UsageError
from branchline.runspec import RunSpec, RunStart
from branchline.sdk.values import encode_default

__all__ = ["BEGIN_RETRY_SECONDS", "RETRY_STATUSES", "HttpSink"]

#: Statuses worth retrying: the server is overloaded, restarting or behind a proxy that is.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: How long `init()` keeps trying to create its run while the server is unreachable.
BEGIN_RETRY_SECONDS = 60.0
_MAX_BACKOFF = 10.0


class _TooLarge(Exception):
    pass


class HttpSink:
    """Starts runs on a server and sends it the journal's records."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        retry_seconds: float = 5.0,
        batch_records: int = 10_000,
        batch_bytes: int = 8 * 1024 * 1024,
        compress: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.retry_seconds = retry_seconds
        self.batch_records = batch_records
        self.batch_bytes = batch_bytes
        self.compress = compress
        headers = {"User-Agent": f"branchline-sdk/{__version__}", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=5.0, pool=10.0),
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2, keepalive_expiry=30.0),
        )

    # -- the Sink protocol ------------------------------------------------------------------------
    def begin_run(self, spec: RunSpec) -> RunStart:
        # begin_run is idempotent on the session id, so retrying after a lost answer is safe;
        # `init` rides out a server restart, however slow (the writer's calls retry briefly: it
        # loops anyway). A minute, like wandb's init timeout order of magnitude.
        response = self._request(
            "POST", "/api/v1/runs/begin", json=spec.to_json(), budget=max(BEGIN_RETRY_SECONDS, self.retry_seconds)
        )
        return RunStart.from_json(response.json())

    def apply(self, session_id: str, records: Sequence[Sequence[Any]]) -> int:
        applied = 0
        for start in range(0, len(records), self.batch_records):
            applied = max(applied, self._send(session_id, records[start : start + self.batch_records]))
        return applied

    def heartbeat(self, incarnation_id: str) -> bool:
        # One quick try: a missed heartbeat is harmless and the next one comes soon.
        response = self._request("POST", f"/api/v1/incarnations/{incarnation_id}/heartbeat", budget=0.0)
        return bool(response.json().get("stop"))

    def mark_crashed(self, incarnation_id: str, session_id: str | None = None) -> None:
        query = f"?session_id={session_id}" if session_id else ""
        self._request("POST", f"/api/v1/incarnations/{incarnation_id}/crashed{query}")

    def close(self) -> None:
        self.client.close()

    def upload_run_files(self, start: RunStart, files: list[tuple[str, Path, str]]) -> int:
        """Send run files' contents ((name, local path, sha256)), as `branchline sync` does for runs
        logged offline; returns how many were sent. Files whose content is gone are skipped."""
        from branchline.artifacts.http import HttpArtifactBackend, upload_run_file

        backend = HttpArtifactBackend(self.base_url, self.api_key, start.entity, start.project)
        sent = 0
        try:
            for name, path, sha256 in files:
                if path.is_file():
                    upload_run_file(backend, start.incarnation_id, name, str(path), sha256)
                    sent += 1
        finally:
            backend.close()
        return sent

    # -- beyond the protocol ---------------------------------------------------------------------
    def viewer(self) -> dict[str, Any]:
        """Who the server says the API key belongs to (raises AuthenticationError for a bad key)."""
        data: dict[str, Any] = self._request("GET", "/api/v1/viewer", budget=5.0).json()
        return data

    # -- internals ------------------------------------------------------------------------------------
    def _send(self, session_id: str, records: Sequence[Sequence[Any]]) -> int:
        body = msgpack.packb(list(records), default=encode_default, use_bin_type=True)
        if len(body) > self.batch_bytes and len(records) > 1:
            half = len(records) // 2
            return max(self._send(session_id, records[:half]), self._send(session_id, records[half:]))
        headers = {"Content-Type": "application/msgpack"}
        if self.compress:
            packer = zlib.compressobj(1, wbits=31)  # gzip, fastest level: the writer's CPU is the cost
            body = packer.compress(body) + packer.flush()
            headers["Content-Encoding"] = "gzip"
        try:
            response = self._request(
                "POST", f"/api/v1/sessions/{session_id}/records", content=body, headers=headers, too_large_ok=True
            )
        except _TooLarge:
            if len(records) <= 1:
                raise CommError(f"{self.base_url} refused a single record as too large.") from None
            half = len(records) // 2
            return max(self._send(session_id, records[:half]), self._send(session_id, records[half:]))
        return int(response.json()["applied_seq"])

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        budget: float | None = None,
        too_large_ok: bool = False,
    ) -> httpx.Response:
        budget = self.retry_seconds if budget is None else budget
        deadline = time.monotonic() + budget
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.client.request(method, path, json=json, content=content, headers=headers)
            except httpx.TransportError as exc:
                failure: str = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                wait = _backoff(attempt)
            else:
                if response.status_code < 400:
                    return response
                if response.status_code == 413 and too_large_ok:
                    raise _TooLarge()
                if response.status_code not in RETRY_STATUSES:
                    raise _error_for(response, self.base_url)
                failure = f"HTTP {response.status_code}: {_message(response)}"
                wait = _retry_after(response) or _backoff(attempt)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CommError(f"{method} {self.base_url}{path} failed after {attempt} attempt(s): {failure}")
            time.sleep(min(wait, remaining))


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, 0.25 * 2**attempt)]."""
    return random.uniform(0.05, min(_MAX_BACKOFF, 0.25 * 2**attempt))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, min(60.0, float(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(60.0, when.timestamp() - time.time()))


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if data.get("detail"):
            return str(data["detail"])
    return response.reason_phrase


def _code(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return str(error.get("code", "")) if isinstance(error, dict) else ""


def _error_for(response: httpx.Response, base_url: str) -> Exception:
    """The branchline exception for a non-retryable error answer, with the server's message."""
    status, message = response.status_code, _message(response)
    if status == 401:
        return AuthenticationError(
            f"{base_url} did not accept the API key: {message} Run `branchline login {base_url}` with a valid key, "
            "or set BRANCHLINE_API_KEY."
        )
    if status == 403:
        return AuthenticationError(f"{base_url} refused the request: {message}")
    if status == 404 and _code(response) == "run_not_found":
        return RunNotFoundError(message)
    if status in (400, 409, 422):
        return UsageError(message)
    return CommError(f"{base_url} answered HTTP {status}: {message}")
