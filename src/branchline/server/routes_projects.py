"""`/api/v1/health` and `/api/v1/projects`: what the home page lists."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from branchline._version import __version__
from branchline.server.auth import can_read, private_runs_of, sees_private_runs
from branchline.server.deps import (
    EntityPath,
    PrincipalDep,
    ProjectPath,
    SettingsDep,
    StoreDep,
    authorize,
)
from branchline.server.errors import ApiError
from branchline.server.models import ErrorBody, Health, ProjectDetail, ProjectList, ProjectPatch

__all__ = ["router"]

ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorBody},
    404: {"model": ErrorBody},
    422: {"model": ErrorBody},
}

router = APIRouter(prefix="/api/v1", responses=ERRORS)


@router.get("/health", response_model=Health, tags=["server"], summary="Server health and version")
def health(settings: SettingsDep, store: StoreDep) -> dict[str, Any]:
    return {"ok": True, "version": __version__, "read_only": settings.read_only}


@router.get("/projects", response_model=ProjectList, tags=["projects"], summary="List projects")
def list_projects(
    store: StoreDep,
    principal: PrincipalDep,
    entity: Annotated[str | None, Query(max_length=128, description="Only this entity's projects.")] = None,
    search: Annotated[str | None, Query(max_length=256, description="Case-insensitive substring of the name.")] = None,
) -> dict[str, Any]:
    # Run counts leave out private runs of entities the caller is not in: to them those runs do not exist.
    rows = store.project_activity(entity, private_runs_of=private_runs_of(principal))
    if search:
        needle = search.lower()
        rows = [r for r in rows if needle in r["name"].lower() or needle in r["entity"].lower()]
    # Only the projects the caller may read: their entities' and public ones.
    rows = [row for row in rows if can_read(principal, row["entity"], row["name"])]
    rows.sort(key=lambda r: -(r["last_activity"] or r["created_at"]))
    return {"projects": rows}


@router.get(
    "/projects/{entity}/{project}",
    response_model=ProjectDetail,
    tags=["projects"],
    summary="A project: counts by state and the config/summary columns of its runs",
)
def get_project(entity: EntityPath, project: ProjectPath, store: StoreDep, principal: PrincipalDep) -> dict[str, Any]:
    authorize(principal, entity, project)
    rows = [
        r for r in store.project_activity(entity, private_runs_of=private_runs_of(principal)) if r["name"] == project
    ]
    if not rows:
        raise ApiError(404, f"Project {entity}/{project} not found.", field="project")
    # Counts and column keys of the runs the caller may see: private runs' are left out for non-members.
    members = sees_private_runs(principal, entity)
    return {
        **rows[0],
        "state_counts": store.state_counts(entity, project, include_private=members),
        "columns": store.project_columns(entity, project, include_private=members),
        "public": store.project_is_public(entity, project),
    }


@router.patch(
    "/projects/{entity}/{project}",
    response_model=ProjectDetail,
    tags=["projects"],
    summary="Make a project public or private",
)
def patch_project(
    entity: EntityPath, project: ProjectPath, body: ProjectPatch, store: StoreDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Flip the project's privacy: public projects are readable by anyone, private ones by members only."""
    authorize(principal, entity, project, write=True)
    if not any(r["name"] == project for r in store.project_activity(entity)):
        raise ApiError(404, f"Project {entity}/{project} not found.", field="project")
    store.set_project_public(entity, project, body.public)
    return get_project(entity, project, store, principal)
