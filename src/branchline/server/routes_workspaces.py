"""`/api/v1/projects/{entity}/{project}/workspace`: the project's saved panel layout.

Members (and readers of a public project) read it, members save and reset it. A save may name the
version it was edited from; if someone saved since, the answer is 409 with the current version, so
the web app can reload instead of overwriting their change.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query

from branchline.server.deps import EntityPath, PrincipalDep, ProjectPath, StoreDep, authorize
from branchline.server.errors import ApiError
from branchline.server.models import ErrorBody
from branchline.server.workspace_models import LAYOUT_MAX_BYTES, Workspace, WorkspaceBody, WorkspaceView
from branchline.store.workspaces import WorkspaceConflictError

__all__ = ["router"]

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody},
    403: {"model": ErrorBody},
    409: {"model": ErrorBody},
    422: {"model": ErrorBody},
}

router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["workspaces"])

ViewQuery = Annotated[
    WorkspaceView, Query(description="`project`: the project's workspace; `run`: its run pages' Workspace tab.")
]
PATH = "/projects/{entity}/{project}/workspace"


def _answer(entity: str, project: str, view: str, row: Any) -> dict[str, Any]:
    if row is None:
        return {
            "entity": entity,
            "project": project,
            "view": view,
            "layout": None,
            "version": 0,
            "updated_at": None,
            "updated_by": None,
        }
    return {
        "entity": entity,
        "project": project,
        "view": view,
        "layout": row.layout,
        "version": row.version,
        "updated_at": row.updated_at,
        "updated_by": row.updated_by,
    }


@router.get(PATH, response_model=Workspace, summary="The project's saved workspace layout (null: automatic)")
def get_workspace(
    entity: EntityPath, project: ProjectPath, store: StoreDep, principal: PrincipalDep, view: ViewQuery = "project"
) -> dict[str, Any]:
    authorize(principal, entity, project)
    return _answer(entity, project, view, store.get_workspace(entity, project, view))


@router.put(PATH, response_model=Workspace, summary="Save the project's workspace layout")
def put_workspace(
    entity: EntityPath,
    project: ProjectPath,
    body: WorkspaceBody,
    store: StoreDep,
    principal: PrincipalDep,
    view: ViewQuery = "project",
) -> dict[str, Any]:
    authorize(principal, entity, project, write=True)
    layout = body.layout.model_dump(mode="json", exclude_none=True)
    size = len(json.dumps(layout, separators=(",", ":")).encode())
    if size > LAYOUT_MAX_BYTES:
        raise ApiError(
            422,
            f"The layout is {size} bytes, over the limit of {LAYOUT_MAX_BYTES}: remove panels or sections.",
            field="layout",
        )
    try:
        row = store.save_workspace(
            entity,
            project,
            layout,
            view=view,
            expected_version=body.base_version,
            updated_by=principal.username or principal.name,
        )
    except WorkspaceConflictError as exc:
        raise ApiError(409, str(exc), code="conflict", field="base_version") from exc
    return _answer(entity, project, view, row)


@router.delete(PATH, response_model=Workspace, summary="Reset the workspace to the automatic layout")
def delete_workspace(
    entity: EntityPath, project: ProjectPath, store: StoreDep, principal: PrincipalDep, view: ViewQuery = "project"
) -> dict[str, Any]:
    authorize(principal, entity, project, write=True)
    store.delete_workspace(entity, project, view)
    return _answer(entity, project, view, None)
