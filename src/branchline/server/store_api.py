"""`/api/v1/store`: the `Store` read and manage operations over HTTP, for the remote `Api` backend.

`branchline.Api()` with a server configured (api/remote.py) calls these one-to-one with the
`Backend` interface (api/backend.py), so scripts see exactly what they see on the embedded store.
Answers are msgpack: run views carry config and summaries with NaN and big ints intact, and a
series is two little-endian arrays a client turns into numpy without parsing.
Every route checks the caller's access to the project the run or incarnation belongs to.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import msgpack
import numpy as np
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from branchline.server.auth import AuthPrincipalDep, Principal, can_read, check_access
from branchline.server.errors import ApiError
from branchline.server.ingest import IncarnationPath
from branchline.store import RunView, Store

__all__ = ["MSGPACK", "router", "view_to_wire"]

MSGPACK = "application/msgpack"
_BINARY: dict[int | str, dict[str, Any]] = {
    200: {"content": {MSGPACK: {"schema": {"type": "string", "format": "binary"}}}}
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad filter or order."},
    401: {"description": "No or a bad API key."},
    403: {"description": "Not allowed for this caller."},
    404: {"description": "No such run, incarnation or project."},
    422: {"description": "The request is malformed."},
}
Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Key = Annotated[str, Query(min_length=1, max_length=512, description="A history key (dotted).")]
Stream = Annotated[int, Query(ge=0, le=1, description="0: history, 1: system metrics.")]
StepBound = Annotated[int | None, Query(ge=-(2**62), le=2**62)]

router = APIRouter(prefix="/api/v1/store", tags=["store"], responses=_ERRORS)


class RunQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filters: dict[str, Any] | None = None
    order: Annotated[str, StringConstraints(max_length=600)] = "+created_at"
    limit: Annotated[int, Field(ge=0, le=100_000)] | None = None
    offset: Annotated[int, Field(ge=0, le=2**31)] = 0


class RunFields(BaseModel):
    """What `Store.update_run` takes: run fields and the incarnation's config/summary."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(max_length=256)] | None = None
    notes: Annotated[str, StringConstraints(max_length=1_000_000)] | None = None
    tags: Annotated[list[Annotated[str, StringConstraints(max_length=256)]], Field(max_length=1000)] | None = None
    group: Annotated[str, StringConstraints(max_length=256)] | None = None
    job_type: Annotated[str, StringConstraints(max_length=256)] | None = None
    config: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None


class MoveTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: Name
    entity: Name | None = None


def view_to_wire(view: RunView) -> dict[str, Any]:
    return dataclasses.asdict(view)


def _pack(value: Any) -> Response:
    return Response(content=msgpack.packb(value, use_bin_type=True), media_type=MSGPACK)


def _store(request: Request) -> Store:
    store: Store | None = getattr(request.app.state, "store", None)
    if store is None:
        raise ApiError(503, "The store is not open: the app's lifespan has not started.", code="unavailable")
    return store


def _incarnation(store: Store, principal: Principal, incarnation_id: str, *, write: bool = False) -> RunView:
    owner = store.incarnation_owner(incarnation_id)
    if owner is None:
        raise ApiError(404, f"No incarnation {incarnation_id!r}.", field="incarnation_id")
    check_access(principal, owner[0], owner[1], write=write)
    view = store.get_incarnation(incarnation_id)
    if view is None:  # its run was deleted; only forks still read its history
        raise ApiError(404, f"Incarnation {incarnation_id!r} belongs to a deleted run.", field="incarnation_id")
    return view


async def _call(request: Request, func: Any, *args: Any, **kwargs: Any) -> Any:
    return await run_in_threadpool(func, _store(request), *args, **kwargs)


# -- runs ---------------------------------------------------------------------------------------------
def _get_run(store: Store, principal: Principal, entity: str, project: str, run_id: str) -> Any:
    check_access(principal, entity, project)
    view = store.get_run(entity, project, run_id)
    if view is None:
        raise ApiError(404, f"Run {entity}/{project}/{run_id} not found.", code="run_not_found")
    return view_to_wire(view)


@router.get("/runs/{entity}/{project}/{run_id}", summary="A run as `Store.get_run` sees it", responses=_BINARY)
async def get_run(entity: Name, project: Name, run_id: Name, request: Request, principal: AuthPrincipalDep) -> Response:
    return _pack(await _call(request, _get_run, principal, entity, project, run_id))


def _query(store: Store, principal: Principal, entity: str, project: str, body: RunQuery) -> Any:
    check_access(principal, entity, project)
    views = store.list_runs(
        entity, project, filters=body.filters, order=body.order, limit=body.limit, offset=body.offset
    )
    return [view_to_wire(v) for v in views]


@router.post("/runs/{entity}/{project}/query", summary="Runs matching a filter, ordered and paged", responses=_BINARY)
async def query_runs(
    entity: Name, project: Name, body: RunQuery, request: Request, principal: AuthPrincipalDep
) -> Response:
    return _pack(await _call(request, _query, principal, entity, project, body))


def _count(store: Store, principal: Principal, entity: str, project: str, body: RunQuery) -> Any:
    check_access(principal, entity, project)
    return {"count": store.count_runs(entity, project, filters=body.filters)}


@router.post("/runs/{entity}/{project}/count", summary="How many runs match a filter", responses=_BINARY)
async def count_runs(
    entity: Name, project: Name, body: RunQuery, request: Request, principal: AuthPrincipalDep
) -> Response:
    return _pack(await _call(request, _count, principal, entity, project, body))


# -- incarnations ---------------------------------------------------------------------------------
def _get_incarnation(store: Store, principal: Principal, incarnation_id: str) -> Any:
    owner = store.incarnation_owner(incarnation_id)
    if owner is None:
        raise ApiError(404, f"No incarnation {incarnation_id!r}.", field="incarnation_id")
    check_access(principal, owner[0], owner[1])
    view = store.get_incarnation(incarnation_id)
    return None if view is None else view_to_wire(view)


@router.get("/incarnations/{incarnation_id}", summary="An incarnation (null if its run is deleted)", responses=_BINARY)
async def get_incarnation(incarnation_id: IncarnationPath, request: Request, principal: AuthPrincipalDep) -> Response:
    return _pack(await _call(request, _get_incarnation, principal, incarnation_id))


def _related(store: Store, principal: Principal, incarnation_id: str, which: str) -> Any:
    view = _incarnation(store, principal, incarnation_id)
    found = store.archived(view) if which == "archived" else store.forks(view)
    # Forks may live in other projects: show only those the caller may read.
    return [view_to_wire(v) for v in found if can_read(principal, v.entity, v.project)]


@router.get("/incarnations/{incarnation_id}/archived", summary="The run's archived incarnations", responses=_BINARY)
async def archived(incarnation_id: IncarnationPath, request: Request, principal: AuthPrincipalDep) -> Response:
    return _pack(await _call(request, _related, principal, incarnation_id, "archived"))


@router.get("/incarnations/{incarnation_id}/forks", summary="Runs forked from the run", responses=_BINARY)
async def forks(incarnation_id: IncarnationPath, request: Request, principal: AuthPrincipalDep) -> Response:
    return _pack(await _call(request, _related, principal, incarnation_id, "forks"))


def _update(store: Store, principal: Principal, incarnation_id: str, body: RunFields) -> Any:
    view = _incarnation(store, principal, incarnation_id, write=True)
    store.update_run(view, **body.model_dump(exclude_unset=True, exclude_none=True))
    return {"ok": True}


@router.patch("/incarnations/{incarnation_id}", summary="Edit the run and this incarnation", responses=_BINARY)
async def update_run(
    incarnation_id: IncarnationPath, body: RunFields, request: Request, principal: AuthPrincipalDep
) -> Response:
    return _pack(await _call(request, _update, principal, incarnation_id, body))


def _stop(store: Store, principal: Principal, incarnation_id: str) -> Any:
    store.request_stop(_incarnation(store, principal, incarnation_id, write=True))
    return {"ok": True}


@router.post("/incarnations/{incarnation_id}/stop", summary="Ask the run to stop", responses=_BINARY)
async def stop_run(incarnation_id: IncarnationPath, request: Request, principal: AuthPrincipalDep) -> Response:
    return _pack(await _call(request, _stop, principal, incarnation_id))


def _move(store: Store, principal: Principal, incarnation_id: str, body: MoveTarget) -> Any:
    view = _incarnation(store, principal, incarnation_id, write=True)
    check_access(principal, body.entity or view.entity, body.project, write=True)
    store.move_run(view, body.project, body.entity)
    return {"ok": True}


@router.post("/incarnations/{incarnation_id}/move", summary="Move the run to another project", responses=_BINARY)
async def move_run(
    incarnation_id: IncarnationPath, body: MoveTarget, request: Request, principal: AuthPrincipalDep
) -> Response:
    return _pack(await _call(request, _move, principal, incarnation_id, body))


def _delete(store: Store, principal: Principal, incarnation_id: str) -> Any:
    store.delete_run(_incarnation(store, principal, incarnation_id, write=True))
    return {"ok": True}


@router.delete("/incarnations/{incarnation_id}", summary="Delete the run", responses=_BINARY)
async def delete_run(incarnation_id: IncarnationPath, request: Request, principal: AuthPrincipalDep) -> Response:
    return _pack(await _call(request, _delete, principal, incarnation_id))


# -- history and telemetry ----------------------------------------------------------------------
def _readable(store: Store, principal: Principal, incarnation_id: str) -> None:
    owner = store.incarnation_owner(incarnation_id)
    if owner is None:
        raise ApiError(404, f"No incarnation {incarnation_id!r}.", field="incarnation_id")
    check_access(principal, owner[0], owner[1])


def _series(store: Store, principal: Principal, inc: str, key: str, stream: int, lo: int | None, hi: int | None) -> Any:
    _readable(store, principal, inc)
    steps, values = store.read_series(inc, key, stream=stream, min_step=lo, max_step=hi)
    values = np.ascontiguousarray(values)
    if values.dtype.kind not in "fiub":
        values = values.astype(np.float64)
    return {
        "steps": np.ascontiguousarray(steps, dtype="<i8").tobytes(),
        "values": values.astype(values.dtype.newbyteorder("<")).tobytes(),
        "dtype": values.dtype.newbyteorder("<").str,
    }


@router.get(
    "/incarnations/{incarnation_id}/series",
    summary="A numeric key's full-resolution (steps, values), following the lineage",
    responses=_BINARY,
)
async def read_series(
    incarnation_id: IncarnationPath,
    key: Key,
    request: Request,
    principal: AuthPrincipalDep,
    stream: Stream = 0,
    min_step: StepBound = None,
    max_step: StepBound = None,
) -> Response:
    return _pack(await _call(request, _series, principal, incarnation_id, key, stream, min_step, max_step))


def _objects(
    store: Store, principal: Principal, inc: str, key: str, stream: int, lo: int | None, hi: int | None
) -> Any:
    _readable(store, principal, inc)
    return [[step, value] for step, value in store.read_objects(inc, key, stream=stream, min_step=lo, max_step=hi)]


@router.get(
    "/incarnations/{incarnation_id}/objects",
    summary="A key's non-numeric values (step, value), following the lineage",
    responses=_BINARY,
)
async def read_objects(
    incarnation_id: IncarnationPath,
    key: Key,
    request: Request,
    principal: AuthPrincipalDep,
    stream: Stream = 0,
    min_step: StepBound = None,
    max_step: StepBound = None,
) -> Response:
    return _pack(await _call(request, _objects, principal, incarnation_id, key, stream, min_step, max_step))


def _simple(store: Store, principal: Principal, inc: str, what: str, stream: int) -> Any:
    _readable(store, principal, inc)
    if what == "keys":
        return store.history_keys(inc, stream=stream)
    return store.console_lines(inc) if what == "console" else store.files(inc)


@router.get("/incarnations/{incarnation_id}/keys", summary="History keys and their kinds", responses=_BINARY)
async def history_keys(
    incarnation_id: IncarnationPath, request: Request, principal: AuthPrincipalDep, stream: Stream = 0
) -> Response:
    return _pack(await _call(request, _simple, principal, incarnation_id, "keys", stream))


@router.get("/incarnations/{incarnation_id}/console", summary="Console lines", responses=_BINARY)
async def console(incarnation_id: IncarnationPath, request: Request, principal: AuthPrincipalDep) -> Response:
    return _pack(await _call(request, _simple, principal, incarnation_id, "console", 0))


@router.get("/incarnations/{incarnation_id}/files", summary="Run files", responses=_BINARY)
async def files(incarnation_id: IncarnationPath, request: Request, principal: AuthPrincipalDep) -> Response:
    return _pack(await _call(request, _simple, principal, incarnation_id, "files", 0))


# -- projects ---------------------------------------------------------------------------------------
def _projects(store: Store, principal: Principal, entity: str | None) -> Any:
    rows = store.list_projects(entity)
    return [r for r in rows if can_read(principal, r["entity"], r["name"], public=bool(r.get("public")))]


@router.get("/projects", summary="Projects the caller may read (optionally of one entity)", responses=_BINARY)
async def list_projects(
    request: Request,
    principal: AuthPrincipalDep,
    entity: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
) -> Response:
    return _pack(await _call(request, _projects, principal, entity))
