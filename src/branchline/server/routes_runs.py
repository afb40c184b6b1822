"""`/api/v1/runs`: list (filter, sort, page), read, edit, stop, move and delete runs and incarnations."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from branchline.errors import UsageError
from branchline.server.auth import Principal, sees_private_runs, visible_runs_filter
from branchline.server.deps import (
    EntityPath,
    PrincipalDep,
    ProjectPath,
    RunIdPath,
    StoreDep,
    authorize,
    find_run,
)
from branchline.server.errors import ApiError
from branchline.server.models import ErrorBody, MoveRequest, Ok, RunDetail, RunList, RunPatch
from branchline.server.routes_data import any_incarnation, current_run
from branchline.server.serialize import run_detail, run_item
from branchline.store.interface import RunView, StoreInterface
from branchline.vocab import RunState, validate_project_name

__all__ = ["build_filters", "router"]

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody},
    403: {"model": ErrorBody},
    404: {"model": ErrorBody},
    409: {"model": ErrorBody},
    422: {"model": ErrorBody},
}

router = APIRouter(prefix="/api/v1/runs", tags=["runs"], responses=ERRORS)

_ORDER = re.compile(r"^[+-]?[A-Za-z_][A-Za-z0-9_.\-/ ]{0,500}$")
_STATES = {s.value for s in RunState}

RUN = "/{entity}/{project}/{run_id}"


def build_filters(filters: str | None, search: str | None, states: list[str] | None) -> dict[str, Any] | None:
    """One MongoDB-style filter from the `filters` JSON, a name search and a state list."""
    clauses: list[dict[str, Any]] = []
    if filters:
        try:
            parsed = json.loads(filters)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the parser goes
            raise ApiError(422, f"filters is not valid JSON: {exc}.", code="invalid_request", field="filters") from None
        if not isinstance(parsed, dict):
            raise ApiError(422, "filters must be a JSON object.", code="invalid_request", field="filters")
        if parsed:
            clauses.append(parsed)
    if search:
        clauses.append({"display_name": {"$regex": "(?i)" + re.escape(search)}})
    if states:
        wanted = [s.strip() for part in states for s in part.split(",") if s.strip()]
        unknown = sorted(set(wanted) - _STATES)
        if unknown:
            raise ApiError(
                422,
                f"Unknown state {unknown[0]!r}; states are {', '.join(sorted(_STATES))}.",
                code="invalid_request",
                field="state",
            )
        if wanted:
            clauses.append({"state": {"$in": wanted}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _detail(
    store: StoreInterface, view: RunView, run: RunView | None = None, principal: Principal | None = None
) -> RunDetail:
    """The Overview of `view` (the run itself, or one of its incarnations when `run` is given)."""
    owner = run or view
    forks = store.forks(owner)
    if principal is not None:  # a private fork stays hidden from readers outside its entity
        forks = [f for f in forks if not f.private or sees_private_runs(principal, f.entity)]
    if run is not None and view.incarnation_id != run.incarnation_id:
        forks = [f for f in forks if (f.forked_from or {}).get("incarnation_id") == view.incarnation_id]
    return run_detail(view, current_incarnation_id=owner.incarnation_id, archived=store.archived(owner), forks=forks)


@router.get(
    "/{entity}/{project}",
    response_model=RunList,
    summary="List a project's runs with a filter, a sort and paging",
)
def list_runs(
    entity: EntityPath,
    project: ProjectPath,
    store: StoreDep,
    principal: PrincipalDep,
    filters: Annotated[
        str | None,
        Query(max_length=20_000, description='MongoDB-style filter JSON, e.g. {"config.lr": {"$gt": 0.01}}.'),
    ] = None,
    search: Annotated[str | None, Query(max_length=256, description="Case-insensitive substring of the name.")] = None,
    state: Annotated[list[str] | None, Query(description="Only these states (repeat or comma-separate).")] = None,
    order: Annotated[
        str, Query(max_length=512, description="`[+|-]created_at`, `duration`, `summary_metrics.<key>`, ...")
    ] = "-created_at",
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> RunList:
    authorize(principal, entity, project)
    if not _ORDER.match(order):
        raise ApiError(
            422, f"order {order!r} is not a sort key such as -created_at.", code="invalid_request", field="order"
        )
    combined = visible_runs_filter(principal, entity, build_filters(filters, search, state))
    try:
        total = store.count_runs(entity, project, filters=combined)
    except UsageError as exc:
        raise ApiError(400, str(exc), field="filters") from None
    try:
        views = store.list_runs(entity, project, filters=combined, order=order, limit=limit, offset=offset)
    except UsageError as exc:
        raise ApiError(400, str(exc), field="order") from None
    return RunList(runs=[run_item(v) for v in views], total=total, limit=limit, offset=offset, order=order)


@router.get(RUN, response_model=RunDetail, summary="A run: every Overview field, archived incarnations and forks")
def get_run(store: StoreDep, principal: PrincipalDep, run: Annotated[RunView, Depends(current_run)]) -> RunDetail:
    return _detail(store, run, principal=principal)


@router.get(
    RUN + "/incarnations/{incarnation_id}",
    response_model=RunDetail,
    summary="One incarnation of a run (an archived one is read-only)",
)
def get_incarnation(
    store: StoreDep,
    run: Annotated[RunView, Depends(current_run)],
    view: Annotated[RunView, Depends(any_incarnation)],
    principal: PrincipalDep,
) -> RunDetail:
    return _detail(store, view, run, principal)


@router.patch(RUN, response_model=RunDetail, summary="Edit a run's name, notes, tags, group, job type or privacy")
def patch_run(
    entity: EntityPath,
    project: ProjectPath,
    run_id: RunIdPath,
    body: RunPatch,
    store: StoreDep,
    principal: PrincipalDep,
) -> RunDetail:
    authorize(principal, entity, project, write=True)
    run = find_run(store, entity, project, run_id)
    fields = body.model_dump(exclude_unset=True, exclude_none=True)
    if not fields:
        raise ApiError(
            422,
            "Give at least one of name, notes, tags, group, job_type, private.",
            code="invalid_request",
            field="body",
        )
    if "tags" in fields:
        fields["tags"] = list(dict.fromkeys(fields["tags"]))
    store.update_run(run, **fields)
    return _detail(store, find_run(store, entity, project, run_id))


@router.post(RUN + "/stop", response_model=RunDetail, summary="Ask a running run to stop (it ends `killed`)")
def stop_run(
    entity: EntityPath, project: ProjectPath, run_id: RunIdPath, store: StoreDep, principal: PrincipalDep
) -> RunDetail:
    authorize(principal, entity, project, write=True)
    run = find_run(store, entity, project, run_id)
    if run.state not in (RunState.RUNNING, RunState.PREEMPTING, RunState.PENDING):
        raise ApiError(409, f"Run {run.path} is {run.state}, not running: there is nothing to stop.", field="state")
    store.request_stop(run)
    return _detail(store, find_run(store, entity, project, run_id))


@router.post(RUN + "/move", response_model=RunDetail, summary="Move a run to another project")
def move_run(
    entity: EntityPath,
    project: ProjectPath,
    run_id: RunIdPath,
    body: MoveRequest,
    store: StoreDep,
    principal: PrincipalDep,
) -> RunDetail:
    authorize(principal, entity, project, write=True)
    target_entity = body.entity or entity
    try:
        validate_project_name(body.project)
    except UsageError as exc:
        raise ApiError(422, str(exc), code="invalid_request", field="project") from None
    authorize(principal, target_entity, body.project, write=True)
    run = find_run(store, entity, project, run_id)
    if (target_entity, body.project) == (entity, project):
        return _detail(store, run)
    try:
        store.move_run(run, body.project, target_entity)
    except UsageError as exc:
        raise ApiError(409, str(exc), field="project") from None
    return _detail(store, find_run(store, target_entity, body.project, run_id))


@router.delete(RUN, response_model=Ok, summary="Delete a run (forks keep the history they read)")
def delete_run(
    entity: EntityPath, project: ProjectPath, run_id: RunIdPath, store: StoreDep, principal: PrincipalDep
) -> dict[str, Any]:
    authorize(principal, entity, project, write=True)
    run = find_run(store, entity, project, run_id)
    if run.state in (RunState.RUNNING, RunState.PREEMPTING):
        raise ApiError(409, f"Run {run.path} is still {run.state}: stop it before deleting it.", field="state")
    store.delete_run(run)
    return {"ok": True}
