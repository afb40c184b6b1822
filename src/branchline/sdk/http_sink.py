"""`HttpSink`: the writer's sink for a branchline server (`/api/v1`, see server/ingest.py).

It runs in the writer process (and once in `init` for `begin_run`), never on the training thread.
Record batches go as gzip-compressed msgpack over one keep-alive connection. Network errors, 5xx
and 429 are retried with exponential backoff and full jitter (honouring `Retry-After`) within a
time budget; after that the call raises and the writer keeps the records in the journal and tries
again later. Applying is idempotent on (session, sequence), so a retry never duplicates.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgpack

from branchline.errors import CommError
from branchline.http_client import NO_RETRY, RETRY_STATUSES, WRITER, HttpClient, RetryPolicy
from branchline.records import RecordError
from branchline.rejects import Rejected
from branchline.runspec import RunSpec, RunStart
from branchline.sdk.sink_types import SinkCapabilities
from branchline.sdk.values import encode_default

__all__ = ["BEGIN_RETRY_SECONDS", "RETRY_STATUSES", "HttpSink"]

#: How long `init()` keeps trying to create its run while the server is unreachable.
BEGIN_RETRY_SECONDS = 60.0
#: `viewer()` answers a person at a prompt: a few seconds at most.
_VIEWER = RetryPolicy(attempts=None, seconds=5.0)


class HttpSink:
    """Starts runs on a server and sends it the journal's records."""

    capabilities = SinkCapabilities(run_files=True)

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
        # A 422 `invalid_record` names a record the server cannot take: the writer sets it aside.
        refused = {"invalid_record": _refused_record}
        self.http = HttpClient(base_url, api_key, timeout=timeout, retry=WRITER.within(retry_seconds), codes=refused)
        self.rejected: list[Rejected] = []
        self.base_url = self.http.base_url
        self.api_key = api_key
        self.retry_seconds = retry_seconds
        self.batch_records = batch_records
        self.batch_bytes = batch_bytes
        self.compress = compress

    # -- the Sink protocol ------------------------------------------------------------------------
    def begin_run(self, spec: RunSpec) -> RunStart:
        # begin_run is idempotent on the session id, so retrying after a lost answer is safe;
        # `init` rides out a server restart, however slow (the writer's calls retry briefly: it
        # loops anyway). A minute, like wandb's init timeout order of magnitude.
        retry = WRITER.within(max(BEGIN_RETRY_SECONDS, self.retry_seconds))
        response = self.http.request("POST", "/api/v1/runs/begin", json=spec.to_json(), retry=retry)
        return RunStart.from_json(response.json())

    def apply(self, session_id: str, records: Sequence[Sequence[Any]]) -> int:
        applied = 0
        for start in range(0, len(records), self.batch_records):
            applied = max(applied, self._send(session_id, records[start : start + self.batch_records]))
        return applied

    def heartbeat(self, incarnation_id: str) -> bool:
        # One quick try: a missed heartbeat is harmless and the next one comes soon.
        response = self.http.request("POST", f"/api/v1/incarnations/{incarnation_id}/heartbeat", retry=NO_RETRY)
        return bool(response.json().get("stop"))

    def mark_crashed(self, incarnation_id: str, session_id: str | None = None) -> None:
        self.http.request("POST", f"/api/v1/incarnations/{incarnation_id}/crashed", params={"session_id": session_id})

    def mark_killed(self, incarnation_id: str) -> None:
        # The server writes the note: the writer terminated a process that ignored a stop.
        self.http.request("POST", f"/api/v1/incarnations/{incarnation_id}/killed")

    def close(self) -> None:
        self.http.close()

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
        data: dict[str, Any] = self.http.request("GET", "/api/v1/viewer", retry=_VIEWER).json()
        return data

    # -- internals ------------------------------------------------------------------------------------
    def _send(self, session_id: str, records: Sequence[Sequence[Any]]) -> int:
        body = msgpack.packb(list(records), default=encode_default, use_bin_type=True)
        if len(body) > self.batch_bytes and len(records) > 1:
            return self._send_halves(session_id, records)
        headers = {"Content-Type": "application/msgpack"}
        if self.compress:
            packer = zlib.compressobj(1, wbits=31)  # gzip, fastest level: the writer's CPU is the cost
            body = packer.compress(body) + packer.flush()
            headers["Content-Encoding"] = "gzip"
        path = f"/api/v1/sessions/{session_id}/records"
        response = self.http.request("POST", path, content=body, headers=headers, passthrough=(413,))
        if response.status_code == 413:
            if len(records) <= 1:
                raise CommError(f"{self.base_url} refused a single record as too large.")
            return self._send_halves(session_id, records)
        answer = response.json()
        self.rejected.extend(Rejected.from_json(r) for r in answer.get("rejected") or ())
        return int(answer["applied_seq"])

    def _send_halves(self, session_id: str, records: Sequence[Sequence[Any]]) -> int:
        half = len(records) // 2
        return max(self._send(session_id, records[:half]), self._send(session_id, records[half:]))


def _refused_record(message: str) -> Exception:
    return RecordError("records", message)
