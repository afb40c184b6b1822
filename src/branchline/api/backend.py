"""What the public API needs from where runs live: a small interface, and the embedded-store one.

`Store` already has exactly these methods, so the local backend is the store itself; a server
backend (HTTP to /api/v1) implements the same interface and `Api` picks it from settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from sqlalchemy.engine import make_url

from branchline.errors import UsageError
from branchline.settings import Settings
from branchline.store.reads import RunView

__all__ = ["Backend", "SeriesSource", "open_backend"]


class SeriesSource(Protocol):
    """Reading one incarnation's history, following its lineage."""

    def read_series(
        self,
        incarnation_id: str,
        key: str,
        *,
        stream: int = 0,
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any]]: ...

    def read_objects(
        self,
        incarnation_id: str,
        key: str,
        *,
        stream: int = 0,
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> list[tuple[int, Any]]: ...

    def history_keys(self, incarnation_id: str, *, stream: int = 0) -> dict[str, dict[str, Any]]: ...


class Backend(SeriesSource, Protocol):
    """Everything `Api`, `Run` and `Runs` ask of a store or a server."""

    def get_run(self, entity: str, project: str, run_id: str) -> RunView | None: ...

    def get_incarnation(self, incarnation_id: str) -> RunView | None: ...

    def list_runs(
        self,
        entity: str,
        project: str,
        *,
        filters: dict[str, Any] | None = None,
        order: str = "+created_at",
        limit: int | None = None,
        offset: int = 0,
    ) -> list[RunView]: ...

    def count_runs(self, entity: str, project: str, *, filters: dict[str, Any] | None = None) -> int: ...

    def archived(self, run: RunView) -> list[RunView]: ...

    def forks(self, run: RunView) -> list[RunView]: ...

    def update_run(self, run: RunView, **fields: Any) -> None: ...

    def request_stop(self, run: RunView) -> None: ...

    def move_run(self, run: RunView, project: str, entity: str | None = None) -> None: ...

    def delete_run(self, run: RunView) -> None: ...

    def list_projects(self, entity: str | None = None) -> list[dict[str, Any]]: ...

    def console_lines(self, incarnation_id: str) -> list[dict[str, Any]]: ...

    def files(self, incarnation_id: str) -> list[dict[str, Any]]: ...

    def read_file(self, incarnation_id: str, path: str) -> bytes: ...

    def write_file(self, incarnation_id: str, path: str, data: bytes) -> None: ...

    def close(self) -> None: ...


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def open_backend(settings: Settings) -> Backend:
    """The backend the settings point at: a server (`base_url`) or a store (`store_url` / the local file)."""
    if settings.base_url and not settings.store_url:
        from branchline.api.remote import RemoteBackend

        remote = RemoteBackend(settings.base_url, settings.api_key)
        if settings.entity is None:
            # As in wandb: without an entity, paths are read in the key owner's own entity.
            settings.entity = remote.default_entity()
        return remote
    from branchline.inflight import wait_until_stored
    from branchline.store.store import open_store

    url = settings.resolved_store_url
    path = _sqlite_file(url)
    # The first run of this process in a new directory may still be creating the store (its writer
    # does that); otherwise reading must not leave an empty store behind wherever the script ran.
    if path is not None and not path.exists() and not (wait_until_stored() and path.exists()):
        raise UsageError(
            f"No branchline store at {path}: no runs were logged with dir={path.parent.parent}. "
            "Point at the right one with Api(overrides={'root_dir': ...} or {'store_url': ...}), "
            "BRANCHLINE_DIR or BRANCHLINE_STORE."
        )
    return open_store(
        url, create=path is None, crash_timeout=settings.x_crash_timeout, files_dir=settings.branchline_dir / "files"
    )
