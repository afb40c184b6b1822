"""The artifact side of the public read API (`branchline.Api`), over a Store.

Each function takes the `Store` and optional defaults; `wrap_run` turns the store's RunView into
whatever run object the caller hands out (the Api's `Run`), for `logged_by()` and `used_by()`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from branchline.artifacts.artifact import Artifact
from branchline.artifacts.backend import (
    LOGGED,
    USED,
    ArtifactBackend,
    ServesArtifacts,
    collect_garbage,
    embedded_backend,
)
from branchline.artifacts.errors import ArtifactNotFoundError
from branchline.artifacts.naming import parse_artifact_path, validate_name
from branchline.errors import UsageError

__all__ = [
    "artifact",
    "artifact_collections",
    "artifact_exists",
    "artifact_versions",
    "garbage_collect",
    "logged_artifacts",
    "used_artifacts",
]

RunWrapper = Callable[[Any], Any] | None


def _backend(store: Any, blob_url: str | None, wrap_run: RunWrapper, entity: str | None = None) -> ArtifactBackend:
    """The artifact backend for an `Api` backend: the one it serves (a server's), else the store plus blobs."""
    if not isinstance(store, ServesArtifacts):
        return embedded_backend(store, blob_url, wrap_run)
    reader: Any = store  # also the Api backend's run catalog

    def load(incarnation_id: str) -> Any:
        view = reader.get_incarnation(incarnation_id)
        if view is None:
            return None
        return wrap_run(view) if wrap_run is not None else view

    return store.artifact_backend(entity, load)


def _where(entity: str | None, project: str | None, text: str) -> tuple[str, str]:
    if not entity or not project:
        raise UsageError(f"Say which project {text!r} is in: use 'entity/project/name:alias'.")
    return entity, project


def artifact(
    store: Any,
    name: str,
    type: str | None = None,
    *,
    entity: str | None = None,
    project: str | None = None,
    blob_url: str | None = None,
    wrap_run: RunWrapper = None,
) -> Artifact:
    """The version `"entity/project/name:alias"` (or `:vN`; `entity`/`project` fill missing parts)."""
    path = parse_artifact_path(name)
    ent, proj = _where(path.entity or entity, path.project or project, name)
    backend = _backend(store, blob_url, wrap_run, ent)
    row = backend.resolve(ent, proj, path.name, path.spec)
    if row is None:
        raise ArtifactNotFoundError(f"Artifact {ent}/{proj}/{path.name}:{path.spec} not found.")
    if type is not None and row.type != type:
        raise ArtifactNotFoundError(
            f"Artifact {ent}/{proj}/{path.name}:{path.spec} has type {row.type!r}, not {type!r}."
        )
    return Artifact._from_row(row, backend)


def artifact_exists(store: Any, name: str, type: str | None = None, **defaults: Any) -> bool:
    try:
        artifact(store, name, type, **defaults)
    except ArtifactNotFoundError:
        return False
    return True


def artifact_versions(
    store: Any,
    type: str | None,
    name: str,
    *,
    entity: str | None = None,
    project: str | None = None,
    blob_url: str | None = None,
    wrap_run: RunWrapper = None,
) -> list[Artifact]:
    """Every version of `"entity/project/name"`, newest first (`api.artifacts(type, name)`)."""
    parts = name.split("/")
    if len(parts) > 3 or ":" in name:
        raise UsageError(f"api.artifacts() takes 'entity/project/name' without a version, got {name!r}.")
    base = validate_name(parts[-1])
    ent = parts[0] if len(parts) == 3 else entity
    proj = parts[-2] if len(parts) >= 2 else project
    ent, proj = _where(ent, proj, name)
    backend = _backend(store, blob_url, wrap_run, ent)
    rows = backend.versions(ent, proj, base)
    if type is not None:
        rows = [r for r in rows if r.type == type]
    return [Artifact._from_row(r, backend) for r in rows]


def artifact_collections(store: Any, entity: str, project: str, type: str | None = None) -> list[dict[str, Any]]:
    """The artifact names in a project: [{"name", "type", "description", "versions", ...}]."""
    collections: list[dict[str, Any]] = store.artifact_collections(entity, project, type)
    return collections


def logged_artifacts(
    store: Any, incarnation_id: str, *, blob_url: str | None = None, wrap_run: RunWrapper = None
) -> list[Artifact]:
    """Versions the incarnation logged (including ones whose identical content already existed)."""
    backend = _backend(store, blob_url, wrap_run)
    return [Artifact._from_row(r, backend) for r in backend.run_versions(incarnation_id, LOGGED)]


def used_artifacts(
    store: Any, incarnation_id: str, *, blob_url: str | None = None, wrap_run: RunWrapper = None
) -> list[Artifact]:
    """Versions the incarnation used, in the order it used them."""
    backend = _backend(store, blob_url, wrap_run)
    return [Artifact._from_row(r, backend) for r in backend.run_versions(incarnation_id, USED)]


def garbage_collect(store: Any, *, blob_url: str | None = None, min_age: float = 3600.0) -> list[str]:
    """Delete blobs that no version references any more (older than `min_age` seconds)."""
    return collect_garbage(store, embedded_backend(store, blob_url).blobs, min_age=min_age)
