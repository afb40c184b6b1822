"""`RemoteBackend`: the `ApiBackend` role (store/interface.py) over a server's `/api/v1/store`.

`Api()` uses it when a server is configured (`branchline login`, BRANCHLINE_BASE_URL), so scripts
read and manage runs the same way as on the embedded store. Answers are msgpack (server/store_api.py);
series arrive as raw little-endian arrays, so a million points cost one request and no parsing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Unpack
from urllib.parse import quote

import msgpack
import numpy as np

from branchline.errors import RunNotFoundError
from branchline.http_client import INTERACTIVE, HttpClient
from branchline.store.interface import ListQuery, RunView, Series, StepRange

if TYPE_CHECKING:
    from branchline.artifacts.backend import ArtifactBackend

__all__ = ["RemoteBackend"]


def _seg(value: str) -> str:
    return quote(value, safe="")


class RemoteBackend:
    """Runs, history and projects of a branchline server, for `Api`."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float | None = None) -> None:
        self.http = HttpClient(
            base_url,
            api_key,
            agent="branchline-api",
            prefix="/api/v1/store",
            accept="application/msgpack",
            timeout=timeout or 60.0,
            retry=INTERACTIVE,
            not_found=RunNotFoundError,
        )
        self.base_url = self.http.base_url

    # -- plumbing ------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        response = self.http.request(method, path, json=json, params=params)
        return msgpack.unpackb(response.content, raw=False, strict_map_key=False)

    @staticmethod
    def _view(data: Any) -> RunView:
        return RunView(**data)

    def _maybe(self, path: str) -> RunView | None:
        try:
            data = self._call("GET", path)
        except RunNotFoundError:
            return None
        return None if data is None else self._view(data)

    def default_entity(self) -> str | None:
        """The API key owner's own entity (None on a server without auth)."""
        response = self.http.request("GET", self.base_url + "/api/v1/viewer", headers={"Accept": "application/json"})
        entity = response.json().get("default_entity")
        return entity if isinstance(entity, str) and entity else None

    # -- runs: the `RunCatalog` role ---------------------------------------------------------------------
    @staticmethod
    def _inc(incarnation_id: str, tail: str = "") -> str:
        return f"/incarnations/{_seg(incarnation_id)}{tail}"

    def _views(self, method: str, path: str, json: Any = None) -> list[RunView]:
        return [self._view(r) for r in self._call(method, path, json=json)]

    def _rows(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params=params)

    def get_run(self, entity: str, project: str, run_id: str) -> RunView | None:
        return self._maybe(f"/runs/{_seg(entity)}/{_seg(project)}/{_seg(run_id)}")

    def get_incarnation(self, incarnation_id: str) -> RunView | None:
        return self._maybe(self._inc(incarnation_id))

    def list_runs(self, entity: str, project: str, **query: Unpack[ListQuery]) -> list[RunView]:
        return self._views("POST", f"/runs/{_seg(entity)}/{_seg(project)}/query", dict(query))

    def count_runs(self, entity: str, project: str, *, filters: dict[str, Any] | None = None) -> int:
        data = self._call("POST", f"/runs/{_seg(entity)}/{_seg(project)}/count", json={"filters": filters})
        return int(data["count"])

    def archived(self, run: RunView) -> list[RunView]:
        return self._views("GET", self._inc(run.incarnation_id, "/archived"))

    def forks(self, run: RunView) -> list[RunView]:
        return self._views("GET", self._inc(run.incarnation_id, "/forks"))

    def update_run(self, run: RunView, **fields: Any) -> None:
        self._call("PATCH", self._inc(run.incarnation_id), json=fields)

    def request_stop(self, run: RunView) -> None:
        self._call("POST", self._inc(run.incarnation_id, "/stop"))

    def move_run(self, run: RunView, project: str, entity: str | None = None) -> None:
        self._call("POST", self._inc(run.incarnation_id, "/move"), json={"project": project, "entity": entity})

    def delete_run(self, run: RunView) -> None:
        self._call("DELETE", self._inc(run.incarnation_id))

    # -- projects, console, files: `ProjectReader`, `RunFiles` ---------------------------------------------
    def list_projects(self, entity: str | None = None) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._rows("/projects", entity=entity)
        return rows

    def console_lines(self, incarnation_id: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._rows(self._inc(incarnation_id, "/console"))
        return rows

    def files(self, incarnation_id: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._rows(self._inc(incarnation_id, "/files"))
        return rows

    def _file_url(self, incarnation_id: str, path: str) -> str:
        return f"{self.base_url}/api/v1/artifacts/files/{_seg(incarnation_id)}/{quote(path)}"

    def read_file(self, incarnation_id: str, path: str) -> bytes:
        return self.http.request("GET", self._file_url(incarnation_id, path)).content

    def write_file(self, incarnation_id: str, path: str, data: bytes) -> None:
        digest = hashlib.sha256(data).hexdigest()
        params = {"sha256": digest, "register": "true"}
        self.http.request("PUT", self._file_url(incarnation_id, path), content=data, params=params)

    def delete_file(self, incarnation_id: str, path: str) -> dict[str, Any] | None:
        """Remove a run file on the server; None when the server has no such file (a 404)."""
        try:
            response = self.http.request("DELETE", self._file_url(incarnation_id, path))
        except RunNotFoundError:
            return None
        removed: dict[str, Any] = msgpack.unpackb(response.content, raw=False, strict_map_key=False)
        return removed

    # -- history: the `SeriesReader` role -----------------------------------------------------------------
    def read_series(self, incarnation_id: str, key: str, **bounds: Unpack[StepRange]) -> Series:
        data = self._rows(self._inc(incarnation_id, "/series"), key=key, **bounds)
        steps = np.frombuffer(data["steps"], dtype="<i8").astype(np.int64)
        values = np.frombuffer(data["values"], dtype=np.dtype(data["dtype"]))
        return steps, values.astype(values.dtype.newbyteorder("="))

    def read_objects(self, incarnation_id: str, key: str, **bounds: Unpack[StepRange]) -> list[tuple[int, Any]]:
        rows = self._rows(self._inc(incarnation_id, "/objects"), key=key, **bounds)
        return [(int(step), value) for step, value in rows]

    def history_keys(self, incarnation_id: str, *, stream: int = 0) -> dict[str, dict[str, Any]]:
        keys: dict[str, dict[str, Any]] = self._rows(self._inc(incarnation_id, "/keys"), stream=stream)
        return keys

    # -- artifacts: this backend says where its artifacts are (artifacts/public.py asks it) ------------
    def artifact_backend(self, entity: str | None, run_loader: Callable[[str], Any] | None) -> ArtifactBackend:
        """The server's artifact API, at the same address with the same key."""
        from branchline.artifacts.http import remote_artifact_backend

        return remote_artifact_backend(self, entity, None, run_loader)

    def close(self) -> None:
        self.http.close()
