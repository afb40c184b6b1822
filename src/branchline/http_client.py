"""`HttpClient`: the one HTTP client every layer uses to talk to a branchline server.

It holds what all callers share: the server's base URL, the API key (a bearer header), a user
agent naming this version, timeouts, the retry policy and the mapping of error answers onto
`branchline.errors`. Network errors, 429 and 5xx are retried with exponential backoff and full
jitter, honouring `Retry-After`, within a bounded number of attempts and a bounded total time; each
caller picks its `RetryPolicy` (the writer's sink rides out a restart, an interactive `Api` call
gives up sooner). It depends on nothing but `branchline.errors`, so any layer may use it.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import httpx

from branchline._version import __version__
from branchline.errors import AuthenticationError, CommError, Error, RunNotFoundError, UsageError

__all__ = [
    "INTERACTIVE",
    "NO_RETRY",
    "RETRY_STATUSES",
    "TRANSFER",
    "WRITER",
    "HttpClient",
    "RetryPolicy",
    "error_message",
    "iter_response",
    "retry_after",
]

#: Statuses worth retrying: the server is overloaded, restarting or behind a proxy that is.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: A `Retry-After` longer than this is cut short: a caller's time budget bounds the wait anyway.
_MAX_RETRY_AFTER = 60.0
#: Request bodies: bytes, or a function giving a fresh stream of chunks for every attempt.
Body = bytes | Callable[[], Iterable[bytes]] | None


@dataclass(frozen=True)
class RetryPolicy:
    """How long a call keeps trying: at most `attempts` tries within `seconds` of waiting.

    Waits grow as `base * 2**attempt`, capped at `max_backoff`, drawn uniformly below that (full
    jitter, so many clients restarting at once do not retry in step); a server's `Retry-After`
    replaces the drawn wait. Either bound ends the retries; `attempts=None` means time alone does.
    """

    attempts: int | None = 5
    seconds: float = 30.0
    base: float = 0.25
    max_backoff: float = 10.0

    def backoff(self, attempt: int) -> float:
        """The jittered wait after failed try number `attempt` (1-based)."""
        return random.uniform(min(0.05, self.max_backoff), min(self.max_backoff, self.base * 2**attempt))

    def within(self, seconds: float) -> RetryPolicy:
        """This policy with another time budget."""
        return replace(self, seconds=seconds)


#: The writer's sink: records stay in the journal meanwhile, so a few seconds then a later pass.
WRITER = RetryPolicy(attempts=None, seconds=5.0)
#: Interactive calls (`Api`, the CLI): a brief server restart is ridden out, an outage is reported.
INTERACTIVE = RetryPolicy(attempts=4, seconds=10.0, max_backoff=4.0)
#: Artifact uploads and downloads: transfers are idempotent, worth a longer wait.
TRANSFER = RetryPolicy(attempts=5, seconds=60.0, max_backoff=5.0)
#: One try (a heartbeat: the next one comes soon anyway).
NO_RETRY = RetryPolicy(attempts=1, seconds=0.0)


class HttpClient:
    """A keep-alive connection pool to one server, with retries and branchline's error mapping.

    `prefix` is prepended to every request path (e.g. `/api/v1/store`); `not_found` is the caller's
    error for a 404 (else only a `run_not_found` answer maps to `RunNotFoundError`); `codes` maps an
    answer's error code to the caller's own exception (e.g. `digest_mismatch`).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        agent: str = "branchline-sdk",
        prefix: str = "",
        accept: str = "application/json",
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        max_connections: int = 4,
        retry: RetryPolicy = INTERACTIVE,
        not_found: type[Error] | None = None,
        codes: Mapping[str, Callable[[str], Exception]] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or None
        self.retry = retry
        self.not_found = not_found
        self.codes = dict(codes or {})
        headers = {"User-Agent": f"{agent}/{__version__}", "Accept": accept}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        self.client = httpx.Client(
            base_url=self.base_url + prefix,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout, pool=max(connect_timeout, 10.0)),
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max(2, max_connections // 2),
                keepalive_expiry=30.0,
            ),
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: Body = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
        passthrough: Iterable[int] = (),
        stop: threading.Event | None = None,
        on_retry: Callable[[], None] | None = None,
    ) -> httpx.Response:
        """Send a request, retrying as `retry` (default: the client's policy) allows.

        Returns a response below 400 or whose status is in `passthrough` (the caller handles it);
        raises the mapped branchline error otherwise, or `CommError` once the retries are spent.
        `content` may be a function returning a fresh chunk stream, so a streamed body can be resent.
        A set `stop` event ends the retries at once; `on_retry` runs before each retry.
        """
        policy = retry or self.retry
        deadline = time.monotonic() + policy.seconds
        query = None if params is None else {k: v for k, v in params.items() if v is not None}
        keep = frozenset(passthrough)
        attempt = 0
        while True:
            attempt += 1
            body = content() if callable(content) else content
            try:
                response = self.client.request(method, path, json=json, content=body, params=query, headers=headers)
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                wait = policy.backoff(attempt)
            else:
                status = response.status_code
                if status < 400 or status in keep:
                    return response
                if status not in RETRY_STATUSES:
                    raise self.error(response)
                failure = f"HTTP {status}: {error_message(response)}"
                asked = retry_after(response)
                wait = policy.backoff(attempt) if asked is None else asked
            remaining = deadline - time.monotonic()
            if remaining <= 0 or attempt == policy.attempts or (stop is not None and stop.is_set()):
                raise CommError(f"{method} {self.base_url}{path} failed after {attempt} attempt(s): {failure}")
            if on_retry is not None:
                on_retry()
            if stop is not None:
                stop.wait(min(wait, remaining))
            else:
                time.sleep(min(wait, remaining))

    def stream(self, method: str, path: str, *, passthrough: Iterable[int] = ()) -> httpx.Response:
        """Open a streamed answer (one try: a half-read stream cannot be resumed transparently).

        The caller reads and closes it; an error answer is read, closed and raised as mapped.
        """
        try:
            response = self.client.send(self.client.build_request(method, path), stream=True)
        except httpx.TransportError as exc:
            raise CommError(f"Could not reach {self.base_url}: {exc}") from None
        if response.status_code >= 400 and response.status_code not in frozenset(passthrough):
            response.read()
            response.close()
            raise self.error(response)
        return response

    def error(self, response: httpx.Response) -> Exception:
        """The branchline exception for an error answer, carrying the server's message."""
        status, message, code = response.status_code, error_message(response), _error_code(response)
        if code in self.codes:
            return self.codes[code](message)
        if status == 401:
            return AuthenticationError(
                f"{self.base_url} did not accept the API key: {message} Run `branchline login {self.base_url}` "
                "with a valid key, or set BRANCHLINE_API_KEY."
            )
        if status == 403:
            return AuthenticationError(f"{self.base_url} refused the request: {message}")
        if status == 404 and self.not_found is not None:
            return self.not_found(message)
        if status == 404 and code == "run_not_found":
            return RunNotFoundError(message)
        if status in (400, 409, 413, 422):
            return UsageError(message)
        return CommError(f"{self.base_url} answered HTTP {status}: {message}")

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def retry_after(response: httpx.Response) -> float | None:
    """The wait a `Retry-After` header asks for, in seconds (delta or HTTP date), if any."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, min(_MAX_RETRY_AFTER, float(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(_MAX_RETRY_AFTER, when.timestamp() - time.time()))


def _json(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def error_message(response: httpx.Response) -> str:
    """The server's message in an error answer (`{"error": {"message"}}` or `{"detail"}`)."""
    data = _json(response)
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if data.get("detail"):
            return str(data["detail"])
        return response.reason_phrase
    if data is None and response.content:
        return response.text[:300]
    return response.reason_phrase


def _error_code(response: httpx.Response) -> str:
    data = _json(response)
    error = data.get("error") if isinstance(data, dict) else None
    return str(error.get("code") or "") if isinstance(error, dict) else ""


def iter_response(response: httpx.Response, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The body of a streamed answer in chunks; the answer is closed when the loop ends."""
    try:
        yield from response.iter_bytes(chunk)
    finally:
        response.close()
