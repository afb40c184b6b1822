"""The store's interface, declared once: role protocols that `Store` implements.

Callers type against the role they need, never against `Store` or its tables: the server's
routes, `branchline.Api()` (api/backend.py: `ApiBackend`, which the remote backend in
api/remote.py implements over HTTP too) and the CLI. `tests/test_store_contract.py` runs every
method declared here on SQLite and PostgreSQL and fails when one is left untested.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Protocol, Unpack

import numpy as np
import numpy.typing as npt

from branchline.runspec import RunSpec, RunStart
from branchline.store.artifacts import EntryRow, VersionRow
from branchline.store.auth import AuthUser, KeyRow, TeamRow, UserRow
from branchline.store.charts import ChartSeries
from branchline.store.leases import Lease
from branchline.store.options import ChartOptions, ListQuery, StepRange
from branchline.store.overview import Overview
from branchline.store.pending_uploads import PendingUpload
from branchline.store.reads import RunView
from branchline.store.workspaces import WorkspaceRow

__all__ = [
    "ROLES",
    "ApiBackend",
    "ArtifactIndex",
    "AuthDirectory",
    "ChartOptions",
    "ChartReader",
    "ChartSeries",
    "Closable",
    "EntryRow",
    "Leases",
    "ListQuery",
    "PendingUpload",
    "PendingUploads",
    "ProjectReader",
    "ProjectStats",
    "RunCatalog",
    "RunView",
    "Series",
    "RunFiles",
    "RunLog",
    "RunLookup",
    "RunTelemetry",
    "SeriesReader",
    "StepRange",
    "StoreInterface",
    "VersionRow",
    "WorkspaceRow",
    "Workspaces",
    "role_methods",
]

Series = tuple[npt.NDArray[np.int64], npt.NDArray[Any]]


class RunLog(Protocol):
    """The write side of a run: start it, apply its journal records, keep it alive."""

    def begin_run(self, spec: RunSpec) -> RunStart: ...
    def apply(self, session_id: str, records: Sequence[Sequence[Any]]) -> int: ...
    def applied_seq(self, session_id: str) -> int | None: ...
    def stream_session(self, incarnation_id: str, stream: str) -> str: ...
    def heartbeat(self, incarnation_id: str) -> bool: ...
    def mark_crashed(self, incarnation_id: str, session_id: str | None = None) -> None: ...
    def mark_killed(self, incarnation_id: str, note: str) -> bool: ...
    def reap_stale(self) -> int: ...


class RunCatalog(Protocol):
    """Finding runs and their incarnations, and managing them."""

    def get_run(self, entity: str, project: str, run_id: str) -> RunView | None: ...
    def get_incarnation(self, incarnation_id: str) -> RunView | None: ...
    def list_runs(self, entity: str, project: str, **query: Unpack[ListQuery]) -> list[RunView]: ...
    def count_runs(self, entity: str, project: str, *, filters: dict[str, Any] | None = None) -> int: ...
    def archived(self, run: RunView) -> list[RunView]: ...
    def forks(self, run: RunView) -> list[RunView]: ...
    def update_run(self, run: RunView, **fields: Any) -> None: ...
    def request_stop(self, run: RunView) -> None: ...
    def move_run(self, run: RunView, project: str, entity: str | None = None) -> None: ...
    def delete_run(self, run: RunView) -> None: ...


class RunLookup(RunCatalog, Protocol):
    """`get_run` that raises `RunNotFoundError` instead of answering None."""

    def require_run(self, entity: str, project: str, run_id: str) -> RunView: ...


class SeriesReader(Protocol):
    """One incarnation's history at full resolution, following its lineage."""

    def read_series(self, incarnation_id: str, key: str, **bounds: Unpack[StepRange]) -> Series: ...
    def read_objects(self, incarnation_id: str, key: str, **bounds: Unpack[StepRange]) -> list[tuple[int, Any]]: ...
    def history_keys(self, incarnation_id: str, *, stream: int = 0) -> dict[str, dict[str, Any]]: ...


class ChartReader(SeriesReader, Protocol):
    """History for charts: many runs at once, reduced where the data is."""

    def history_keys_many(
        self, incarnation_ids: Sequence[str], *, stream: int = 0
    ) -> dict[str, dict[str, dict[str, Any]]]: ...
    def read_series_overviews(
        self, incarnation_ids: Sequence[str], key: str, *, points: int, **bounds: Unpack[StepRange]
    ) -> dict[str, Overview]: ...
    def chart_series(
        self, incarnation_ids: Sequence[str], keys: Sequence[str], **options: Unpack[ChartOptions]
    ) -> list[ChartSeries]: ...
    def lineage(self, incarnation_id: str) -> list[tuple[str, int]]: ...
    def media_types(self, incarnation_ids: Sequence[str], *, stream: int = 0) -> dict[str, dict[str, str]]: ...


class ProjectReader(Protocol):
    """Projects as the Api lists them."""

    def list_projects(self, entity: str | None = None) -> list[dict[str, Any]]: ...


class ProjectStats(ProjectReader, Protocol):
    """Projects as the web app shows them: activity, run states, column names."""

    def project_activity(
        self, entity: str | None = None, *, private_runs_of: Collection[str] | None = None
    ) -> list[dict[str, Any]]: ...
    def state_counts(self, entity: str, project: str, *, include_private: bool = True) -> dict[str, int]: ...
    def project_columns(
        self, entity: str, project: str, *, sample: int = 2000, cap: int = 300, include_private: bool = True
    ) -> dict[str, list[str]]: ...


class RunFiles(Protocol):
    """A run's console and files."""

    def console_lines(self, incarnation_id: str) -> list[dict[str, Any]]: ...
    def files(self, incarnation_id: str) -> list[dict[str, Any]]: ...
    def read_file(self, incarnation_id: str, path: str) -> bytes: ...
    def write_file(self, incarnation_id: str, path: str, data: bytes) -> None: ...
    def delete_file(self, incarnation_id: str, path: str) -> dict[str, Any] | None: ...


class RunTelemetry(RunFiles, Protocol):
    """Files listed with content stored elsewhere, and alerts."""

    def add_run_file(self, incarnation_id: str, path: str, size: int, sha256: str) -> None: ...
    def set_console_lines(self, incarnation_id: str, first: int, lines: Sequence[Sequence[Any]]) -> None: ...
    def alerts(self, incarnation_id: str) -> list[dict[str, Any]]: ...


class AuthDirectory(Protocol):
    """Users, API keys, teams, project visibility, and who owns an incarnation or session."""

    def create_user(self, username: str, *, email: str = "", admin: bool = False) -> UserRow: ...
    def list_users(self) -> list[UserRow]: ...
    def user_count(self) -> int: ...
    def create_api_key(self, username: str, *, name: str = "") -> tuple[KeyRow, str]: ...
    def revoke_api_key(self, key_id: str) -> bool: ...
    def list_api_keys(self, username: str | None = None) -> list[KeyRow]: ...
    def authenticate(self, key: str) -> AuthUser | None: ...
    def create_team(self, name: str) -> TeamRow: ...
    def add_team_member(self, team: str, username: str, *, role: str = "member") -> None: ...
    def remove_team_member(self, team: str, username: str) -> bool: ...
    def list_teams(self) -> list[TeamRow]: ...
    def set_project_public(self, entity: str, project: str, public: bool) -> None: ...
    def project_is_public(self, entity: str, project: str) -> bool: ...
    def incarnation_owner(self, incarnation_id: str) -> tuple[str, str] | None: ...
    def incarnation_owners(self, incarnation_ids: Sequence[str]) -> dict[str, tuple[str, str]]: ...
    def session_owner(self, session_id: str) -> tuple[str, str, str] | None: ...


class ArtifactIndex(Protocol):
    """Artifact versions, their manifests, aliases and users; which blobs they name."""

    def commit_artifact(self, **fields: Any) -> tuple[VersionRow, bool]: ...
    def resolve_artifact(self, entity: str, project: str, name: str, spec: str) -> VersionRow | None: ...
    def get_artifact(self, version_id: str) -> VersionRow | None: ...
    def artifact_versions(self, entity: str, project: str, name: str) -> list[VersionRow]: ...
    def artifact_collections(self, entity: str, project: str, type: str | None = None) -> list[dict[str, Any]]: ...
    def artifact_entries(self, version_id: str) -> list[EntryRow]: ...
    def use_artifact(self, version_id: str, incarnation_id: str) -> None: ...
    def set_artifact_aliases(self, version_id: str, aliases: Sequence[str]) -> None: ...
    def update_artifact(self, version_id: str, *, description: str | None, metadata: dict[str, Any]) -> None: ...
    def delete_artifact(self, version_id: str, *, delete_aliases: bool = False) -> list[str]: ...
    def run_artifacts(self, incarnation_id: str, role: str) -> list[VersionRow]: ...
    def run_artifact_summaries(self, incarnation_id: str) -> dict[str, list[dict[str, Any]]]: ...
    def artifact_users(self, version_id: str, role: str) -> list[str]: ...
    def referenced_blobs(self, digests: Sequence[str]) -> set[str]: ...
    def blob_in_project(self, entity: str, project: str, digest: str) -> bool: ...


class PendingUploads(Protocol):
    """Artifact uploads in flight over the W&B protocol, shared by every server replica."""

    def create_pending_upload(self, upload: PendingUpload) -> None: ...
    def get_pending_upload(self, upload_id: str) -> PendingUpload | None: ...
    def pending_upload_by_client_id(self, client_id: str) -> str | None: ...
    def add_pending_upload_file(self, upload_id: str, path: str, sha256: str, size: int) -> bool: ...
    def set_pending_upload_entries(self, upload_id: str, entries: Sequence[EntryRow]) -> bool: ...
    def finish_pending_upload(self, upload_id: str) -> bool: ...
    def drop_stale_uploads(self, older_than: float = ...) -> int: ...


class Workspaces(Protocol):
    """Saved workspace layouts, one per project and view ("project" or "run")."""

    def get_workspace(self, entity: str, project: str, view: str = "project") -> WorkspaceRow | None: ...
    def save_workspace(
        self,
        entity: str,
        project: str,
        layout: dict[str, Any],
        *,
        view: str = "project",
        expected_version: int | None = None,
        updated_by: str | None = None,
    ) -> WorkspaceRow: ...
    def delete_workspace(self, entity: str, project: str, view: str = "project") -> bool: ...


class Leases(Protocol):
    """Background work that one process of many runs at a time."""

    def lease(self, name: str) -> Lease: ...


class Closable(Protocol):
    def close(self) -> None: ...


class ApiBackend(RunCatalog, SeriesReader, ProjectReader, RunFiles, Closable, Protocol):
    """What `branchline.Api()` reads and manages: the embedded store, or a server over HTTP."""


class StoreInterface(
    RunLog,
    RunLookup,
    ChartReader,
    ProjectStats,
    RunTelemetry,
    AuthDirectory,
    ArtifactIndex,
    PendingUploads,
    Workspaces,
    Leases,
    Closable,
    Protocol,
):
    """Everything a server, the SDK's writer and the CLI may ask of persistence."""


#: The roles, for tests that hold every method to the contract.
ROLES: tuple[type, ...] = (
    RunLog,
    RunCatalog,
    RunLookup,
    SeriesReader,
    ChartReader,
    ProjectReader,
    ProjectStats,
    RunFiles,
    RunTelemetry,
    AuthDirectory,
    ArtifactIndex,
    PendingUploads,
    Workspaces,
    Leases,
    Closable,
)


def role_methods(role: type) -> set[str]:
    """The public method names a role protocol declares (its own and inherited)."""
    names: set[str] = set()
    for cls in role.__mro__:
        if cls is object or cls is Protocol or cls.__module__ != __name__:
            continue
        names.update(n for n, v in vars(cls).items() if callable(v) and not n.startswith("_"))
    return names
