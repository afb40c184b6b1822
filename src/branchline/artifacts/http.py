"""`HttpArtifactBackend`: the `ArtifactBackend` interface over a server's `/api/v1/artifacts`.

Logging asks the server which blobs it lacks, sends only those (in parallel, streamed, each
verified against its digest on the way), then commits the manifest; the server refuses a commit
while a blob is absent, so an interrupted upload leaves no version, and re-running it sends only
what is still missing. Downloads stream; `transfer.download_entries` verifies every byte.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import msgpack

from branchline.artifacts.backend import CommitRequest
from branchline.artifacts.blobstores import verified_chunks
from branchline.artifacts.errors import ArtifactIntegrityError, ArtifactNotFoundError
from branchline.artifacts.hashing import FileStat
from branchline.http_client import TRANSFER, HttpClient, iter_response
from branchline.store.artifacts import EntryRow, VersionRow

__all__ = ["HttpArtifactBackend", "remote_artifact_backend", "upload_run_file"]

_MSGPACK = "application/msgpack"


def _seg(value: str) -> str:
    return quote(value, safe="")


def _version(data: dict[str, Any]) -> VersionRow:
    return VersionRow(**data)


class HttpArtifactBackend:
    """Versions and blobs kept by a branchline server, reached over HTTP.

    `entity`/`project` name where blobs are uploaded when a call does not say (a run's project);
    blobs are read through the project of the version that lists them.
    """

    workers = 4

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        entity: str,
        project: str,
        *,
        run_loader: Callable[[str], Any] | None = None,
        timeout: float = 120.0,
        workers: int = 4,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.entity = entity
        self.project = project
        self.workers = workers
        self._run_loader = run_loader
        self.http = HttpClient(
            base_url,
            api_key,
            prefix="/api/v1/artifacts",
            accept=_MSGPACK,
            timeout=timeout,
            connect_timeout=10.0,
            max_connections=max(4, workers * 2),
            retry=TRANSFER,
            not_found=ArtifactNotFoundError,
            codes={"digest_mismatch": lambda message: ArtifactIntegrityError(message, [])},
        )
        # Which project lists a blob, learnt from `entries()`: downloads go through that project.
        self._homes: dict[str, tuple[str, str]] = {}
        self._homes_lock = threading.Lock()

    # -- plumbing --------------------------------------------------------------------------------
    def _request(
        self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        # JSON with NaN/Infinity allowed: artifact metadata may hold them, and the server reads them back.
        content = None if body is None else json.dumps(body, allow_nan=True).encode()
        headers = {"Content-Type": "application/json"} if content is not None else None
        return self.http.request(method, path, content=content, headers=headers, params=params)

    def _call(self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        response = self._request(method, path, body=body, params=params)
        return msgpack.unpackb(response.content, raw=False, strict_map_key=False)

    def _project(self, entity: str | None = None, project: str | None = None) -> str:
        return f"/{_seg(entity or self.entity)}/{_seg(project or self.project)}"

    # -- blobs ----------------------------------------------------------------------------------------
    def missing_blobs(self, digests: Collection[str]) -> set[str]:
        wanted = sorted(set(digests))
        missing: set[str] = set()
        for start in range(0, len(wanted), 10_000):
            data = self._call(
                "POST", self._project() + "/blobs/missing", body={"digests": wanted[start : start + 10_000]}
            )
            missing.update(data["missing"])
        return missing

    def upload_blob(self, digest: str, path: str, expected_stat: FileStat | None) -> None:
        """Stream the file to the server; the bytes are re-hashed on the way (a changed file fails)."""
        url = self._project() + f"/blobs/{digest}"
        _put(self.http, url, lambda: verified_chunks(path, digest))

    def open_blob(self, digest: str) -> Iterator[bytes]:
        with self._homes_lock:
            entity, project = self._homes.get(digest, (self.entity, self.project))
        response = self.http.stream("GET", self._project(entity, project) + f"/blobs/{digest}", passthrough=(404,))
        if response.status_code == 404:
            response.close()
            raise FileNotFoundError(f"blob {digest} is missing on {self.base_url}")
        return iter_response(response)

    def blob_path(self, digest: str) -> Path | None:
        return None

    # -- versions --------------------------------------------------------------------------------------
    def commit(self, request: CommitRequest) -> tuple[VersionRow, bool]:
        body = {
            "name": request.name,
            "type": request.type,
            "digest": request.digest,
            "entries": [_entry_dict(e) for e in request.entries],
            "description": request.description,
            "metadata": request.metadata,
            "aliases": request.aliases,
            "incarnation_id": request.incarnation_id,
            "role": request.role,
        }
        data = self._call("POST", self._project(request.entity, request.project) + "/commit", body=body)
        row = _version(data["version"])
        self._remember(row, request.entries)
        return row, bool(data["created"])

    def resolve(self, entity: str, project: str, name: str, spec: str) -> VersionRow | None:
        data = self._call(
            "GET", self._project(entity, project) + f"/collections/{_seg(name)}/resolve", params={"spec": spec}
        )
        return None if data is None else _version(data)

    def get(self, version_id: str) -> VersionRow | None:
        try:
            return _version(self._call("GET", f"/versions/{_seg(version_id)}"))
        except ArtifactNotFoundError:
            return None

    def versions(self, entity: str, project: str, name: str) -> list[VersionRow]:
        data = self._call("GET", self._project(entity, project) + f"/collections/{_seg(name)}/versions")
        return [_version(d) for d in data]

    def entries(self, version_id: str) -> list[EntryRow]:
        rows = [EntryRow(**d) for d in self._call("GET", f"/versions/{_seg(version_id)}/entries")]
        row = self.get(version_id)
        if row is not None:
            self._remember(row, rows)
        return rows

    def _remember(self, row: VersionRow, entries: Sequence[EntryRow]) -> None:
        with self._homes_lock:
            for entry in entries:
                if entry.ref is None:
                    self._homes.setdefault(entry.digest, (row.entity, row.project))

    def record_use(self, version_id: str, incarnation_id: str) -> None:
        self._call("POST", f"/versions/{_seg(version_id)}/use", body={"incarnation_id": incarnation_id})

    def set_aliases(self, version_id: str, aliases: Sequence[str]) -> None:
        self._call("PUT", f"/versions/{_seg(version_id)}/aliases", body={"aliases": list(aliases)})

    def update(self, version_id: str, description: str | None, metadata: dict[str, Any]) -> None:
        self._call("PATCH", f"/versions/{_seg(version_id)}", body={"description": description, "metadata": metadata})

    def delete(self, version_id: str, delete_aliases: bool) -> None:
        self._call("DELETE", f"/versions/{_seg(version_id)}", params={"delete_aliases": delete_aliases})

    def run_versions(self, incarnation_id: str, role: str) -> list[VersionRow]:
        data = self._call("GET", f"/incarnations/{_seg(incarnation_id)}", params={"role": role})
        return [_version(d) for d in data]

    def users(self, version_id: str, role: str) -> list[str]:
        return [str(i) for i in self._call("GET", f"/versions/{_seg(version_id)}/users", params={"role": role})]

    def run(self, incarnation_id: str) -> Any:
        return None if self._run_loader is None else self._run_loader(incarnation_id)

    def close(self) -> None:
        self.http.close()


def _entry_dict(entry: EntryRow) -> dict[str, Any]:
    """The entry as a commit lists it: its row's fields, the optional ones only when set."""
    return {k: v for k, v in asdict(entry).items() if k in ("path", "digest", "size") or v not in (None, {})}


def _put(
    http: HttpClient,
    url: str,
    chunks: Callable[[], Iterator[bytes]],
    params: dict[str, str] | None = None,
    stop: threading.Event | None = None,
    on_retry: Callable[[], None] | None = None,
) -> None:
    """PUT a streamed body, resent from the start on a retry (the server is idempotent)."""
    headers = {"Content-Type": "application/octet-stream"}
    http.request("PUT", url, content=chunks, params=params, headers=headers, stop=stop, on_retry=on_retry)


def upload_run_file(
    backend: HttpArtifactBackend,
    incarnation_id: str,
    rel: str,
    path: str,
    sha256: str,
    *,
    stop: threading.Event | None = None,
    on_retry: Callable[[], None] | None = None,
) -> None:
    """Send a run file's content for (incarnation, path); the server stores it by sha256."""
    url = f"/files/{_seg(incarnation_id)}/{quote(rel, safe='/')}"
    _put(backend.http, url, lambda: verified_chunks(path, sha256), {"sha256": sha256}, stop, on_retry)


def remote_artifact_backend(
    remote: Any, entity: str | None, project: str | None, run_loader: Callable[[str], Any] | None = None
) -> HttpArtifactBackend:
    """The artifact backend beside an `Api`'s `RemoteBackend` (same server, same API key)."""
    http: HttpClient = remote.http
    return HttpArtifactBackend(http.base_url, http.api_key, entity or "", project or "", run_loader=run_loader)
