"""`/api/v1/store`: the `Store` read and manage operations over HTTP, for the remote `Api` backend.

`branchline.Api()` with a server configured (api/remote.py) calls these one-to-one with the
`ApiBackend` role (store/interface.py), so scripts see exactly what they see on the embedded store.
Answers are msgpack: run views carry config and summaries with NaN and big ints intact, and a
series is two little-endian arrays a client turns into numpy without parsing.
Every route checks the caller's access to the project the run or incarnation belongs to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any

import msgpack
import numpy as np
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from starlette.concurrency import run_in_threadpool

from branchline.errors import UsageError
from branchline.records import RecordError, clean_json
from branchline.server.auth import (
    AuthPrincipalDep,
    Principal,
    can_read,
    check_access,
    check_incarnation_visible,
    check_run_visible,
    sees_private_runs,
    visible_runs_filter,
)
from branchline.server.deps import IncarnationPath, get_store
from branchline.server.errors import ApiError
from branchline.server.guards import SafeText
from branchline.store.filters import compile_filter
from branchline.store.interface import RunView, Series, StoreInterface

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
Name = Annotated[SafeText, StringConstraints(min_length=1, max_length=128)]
Text256 = Annotated[SafeText, StringConstraints(max_length=256)]
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

    name: Text256 | None = None
    notes: Annotated[SafeText, StringConstraints(max_length=1_000_000)] | None = None
    tags: Annotated[list[Text256], Field(max_length=1000)] | None = None
    group: Text256 | None = None
    job_type: Text256 | None = None
    private: bool | None = None
    config: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None

    @field_validator("config", "summary")
    @classmethod
    def _plain_json(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        # The rule `begin` applies to a config: what is stored must come back through msgpack
        # (64-bit integers) and PostgreSQL (no NUL), or every later read of the run fails.
        try:
            return None if value is None else clean_json(value)
        except RecordError as bad:
            raise ValueError(bad.message) from None


class MoveTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: Name
    entity: Name | None = None


def view_to_wire(view: RunView) -> dict[str, Any]:
    return dataclasses.asdict(view)


def _pack(value: Any) -> Response:
    return Response(content=msgpack.packb(value, use_bin_type=True), media_type=MSGPACK)


def _owner(store: StoreInterface, principal: Principal, incarnation_id: str, *, write: bool = False) -> None:
    """Refuse unless the caller may read (write) the project the incarnation belongs to."""
    owner = store.incarnation_owner(incarnation_id)
    if owner is None:
        raise ApiError(404, f"No incarnation {incarnation_id!r}.", field="incarnation_id")
    check_access(principal, owner[0], owner[1], write=write)
    check_incarnation_visible(store, principal, owner[0], incarnation_id)


def _incarnation(store: StoreInterface, principal: Principal, incarnation_id: str, *, write: bool = False) -> RunView:
    _owner(store, principal, incarnation_id, write=write)
    view = store.get_incarnation(incarnation_id)
    if view is None:  # its run was deleted; only forks still read its history
        raise ApiError(404, f"Incarnation {incarnation_id!r} belongs to a deleted run.", field="incarnation_id")
    return view


async def _call(request: Request, func: Any, *args: Any, **kwargs: Any) -> Any:
    return await run_in_threadpool(func, get_store(request), *args, **kwargs)


# -- runs ---------------------------------------------------------------------------------------------
def _get_run(store: StoreInterface, principal: Principal, entity: str, project: str, run_id: str) -> Any:
    check_access(principal, entity, project)
    view = store.get_run(entity, project, run_id)
    if view is None:
        raise ApiError(404, f"Run {entity}/{project}/{run_id} not found.", code="run_not_found")
    check_run_visible(principal, entity, view.private, f"Run {entity}/{project}/{run_id}")
    return view_to_wire(view)


@router.get("/runs/{entity}/{project}/{run_id}", summary="A run as `Store.get_run` sees it", responses=_BINARY)
async def get_run(entity: Name, project: Name, run_id: Name, request: Request, principal: AuthPrincipalDep) -> Response:
    return _pack(await _call(request, _get_run, principal, entity, project, run_id))


def _checked_filters(filters: dict[str, Any] | None) -> None:
    """A malformed filter is a 400 naming `filters`, before any query runs."""
    if filters:
        try:
            compile_filter(filters, "postgresql")
        except UsageError as exc:
            raise ApiError(400, str(exc), field="filters") from None


def _query(store: StoreInterface, principal: Principal, entity: str, project: str, body: RunQuery) -> Any:
    check_access(principal, entity, project)
    _checked_filters(body.filters)
    filters = visible_runs_filter(principal, entity, body.filters)
    views = store.list_runs(entity, project, filters=filters, order=body.order, limit=body.limit, offset=body.offset)
    return [view_to_wire(v) for v in views]


@router.post("/runs/{entity}/{project}/query", summary="Runs matching a filter, ordered and paged", responses=_BINARY)
async def query_runs(
    entity: Name, project: Name, body: RunQuery, request: Request, principal: AuthPrincipalDep
) -> Response:
    return _pack(await _call(request, _query, principal, entity, project, body))


def _count(store: StoreInterface, principal: Principal, entity: str, project: str, body: RunQuery) -> Any:
    check_access(principal, entity, project)
    _checked_filters(body.filters)
    return {"count": store.count_runs(entity, project, filters=visible_runs_filter(principal, entity, body.filters))}


@router.post("/runs/{entity}/{project}/count", summary="How many runs match a filter", responses=_BINARY)
async def count_runs(
    entity: Name, project: Name, body: RunQuery, request: Request, principal: AuthPrincipalDep
) -> Response:
    return _pack(await _call(request, _count, principal, entity, project, body))


# -- incarnations ---------------------------------------------------------------------------------
def _get_incarnation(store: StoreInterface, principal: Principal, incarnation_id: str) -> Any:
    _owner(store, principal, incarnation_id)
    view = store.get_incarnation(incarnation_id)
    return None if view is None else view_to_wire(view)


@router.get("/incarnations/{incarnation_id}", summary="An incarnation (null if its run is deleted)", responses=_BINARY)
async def get_incarnation(incarnation_id: IncarnationPath, request: Request, principal: AuthPrincipalDep) -> Response:
    return _pack(await _call(request, _get_incarnation, principal, incarnation_id))


def _related(store: StoreInterface, principal: Principal, incarnation_id: str, which: str) -> Any:
    view = _incarnation(store, principal, incarnation_id)
    found = store.archived(view) if which == "archived" else store.forks(view)
    # Forks may live in other projects: show only those the caller may read.
    return [
        view_to_wire(v)
        for v in found
        if can_read(principal, v.entity, v.project) and (not v.private or sees_private_runs(principal, v.entity))
    ]


@router.get("/incarnations/{incarnation_id}/archived", summary="The run's archived incarnations", responses=_BINARY)
async def archived(incarnation_id: IncarnationPath, request: Request, principal: AuthPrincipalDep) -> Response:
    return _pack(await _call(request, _related, principal, incarnation_id, "archived"))


@router.get("/incarnations/{incarnation_id}/forks", summary="Runs forked from the run", responses=_BINARY)
async def forks(incarnation_id: IncarnationPath, request: Request, principal: AuthPrincipalDep) -> Response:
    return _pack(await _call(request, _related, principal, incarnation_id, "forks"))


def _manage(store: StoreInterface, principal: Principal, incarnation_id: str, op: str, body: Any = None) -> Any:
    """Edit, stop, move or delete the run of an incarnation the caller may write."""
    view = _incarnation(store, principal, incarnation_id, write=True)
    if op == "update":
        store.update_run(view, **body.model_dump(exclude_unset=True, exclude_none=True))
    elif op == "move":
        check_access(principal, body.entity or view.entity, body.project, write=True)
        store.move_run(view, body.project, body.entity)
    elif op == "stop":
        store.request_stop(view)
    else:
        store.delete_run(view)
    return {"ok": True}


async def _managed(request: Request, principal: Principal, incarnation_id: str, op: str, body: Any = None) -> Response:
    return _pack(await _call(request, _manage, principal, incarnation_id, op, body))


@router.patch("/incarnations/{incarnation_id}", summary="Edit the run and this incarnation", responses=_BINARY)
async def update_run(
    incarnation_id: IncarnationPath, body: RunFields, request: Request, principal: AuthPrincipalDep
) -> Response:
    return await _managed(request, principal, incarnation_id, "update", body)


@router.post("/incarnations/{incarnation_id}/stop", summary="Ask the run to stop", responses=_BINARY)
async def stop_run(incarnation_id: IncarnationPath, request: Request, principal: AuthPrincipalDep) -> Response:
    return await _managed(request, principal, incarnation_id, "stop")


@router.post("/incarnations/{incarnation_id}/move", summary="Move the run to another project", responses=_BINARY)
async def move_run(
    incarnation_id: IncarnationPath, body: MoveTarget, request: Request, principal: AuthPrincipalDep
) -> Response:
    return await _managed(request, principal, incarnation_id, "move", body)


@router.delete("/incarnations/{incarnation_id}", summary="Delete the run", responses=_BINARY)
async def delete_run(incarnation_id: IncarnationPath, request: Request, principal: AuthPrincipalDep) -> Response:
    return await _managed(request, principal, incarnation_id, "delete")


# -- history, console and files: reads of one incarnation, declared once ----------------------------
def _wire_series(found: Series) -> dict[str, Any]:
    """(steps, values) as two little-endian arrays a client turns into numpy without parsing."""
    steps, values = found
    values = np.ascontiguousarray(values)
    if values.dtype.kind not in "fiub":
        values = values.astype(np.float64)
    return {
        "steps": np.ascontiguousarray(steps, dtype="<i8").tobytes(),
        "values": values.astype(values.dtype.newbyteorder("<")).tobytes(),
        "dtype": values.dtype.newbyteorder("<").str,
    }


def _wire_objects(found: list[tuple[int, Any]]) -> list[list[Any]]:
    return [[step, value] for step, value in found]


def _as_is(found: Any) -> Any:
    return found


#: The `ApiBackend` reads served under `/incarnations/{id}/<tail>`: tail → (method, summary, wire form).
#: Keyed reads take `key` and a step range; `keys` takes the stream; the rest take nothing more.
_KEYED_READS: dict[str, tuple[str, str, Callable[[Any], Any]]] = {
    "series": ("read_series", "A numeric key's full-resolution (steps, values), following the lineage", _wire_series),
    "objects": ("read_objects", "A key's non-numeric values (step, value), following the lineage", _wire_objects),
}
_PLAIN_READS: dict[str, tuple[str, str, Callable[[Any], Any]]] = {
    "console": ("console_lines", "Console lines", _as_is),
    "files": ("files", "Run files", _as_is),
}


def _read(
    store: StoreInterface, principal: Principal, inc: str, spec: tuple[str, str, Any], *args: Any, **kwargs: Any
) -> Any:
    _owner(store, principal, inc)
    method, _, wire = spec
    return wire(getattr(store, method)(inc, *args, **kwargs))


def _keyed_route(tail: str, spec: tuple[str, str, Callable[[Any], Any]]) -> None:
    async def endpoint(
        incarnation_id: IncarnationPath,
        key: Key,
        request: Request,
        principal: AuthPrincipalDep,
        stream: Stream = 0,
        min_step: StepBound = None,
        max_step: StepBound = None,
    ) -> Response:
        bounds = {"stream": stream, "min_step": min_step, "max_step": max_step}
        return _pack(await _call(request, _read, principal, incarnation_id, spec, key, **bounds))

    router.add_api_route(
        f"/incarnations/{{incarnation_id}}/{tail}", endpoint, summary=spec[1], responses=_BINARY, name=spec[0]
    )


def _plain_route(tail: str, spec: tuple[str, str, Callable[[Any], Any]]) -> None:
    async def endpoint(incarnation_id: IncarnationPath, request: Request, principal: AuthPrincipalDep) -> Response:
        return _pack(await _call(request, _read, principal, incarnation_id, spec))

    router.add_api_route(
        f"/incarnations/{{incarnation_id}}/{tail}", endpoint, summary=spec[1], responses=_BINARY, name=tail
    )


for _tail, _spec in _KEYED_READS.items():
    _keyed_route(_tail, _spec)
for _tail, _spec in _PLAIN_READS.items():
    _plain_route(_tail, _spec)


@router.get("/incarnations/{incarnation_id}/keys", summary="History keys and their kinds", responses=_BINARY)
async def history_keys(
    incarnation_id: IncarnationPath, request: Request, principal: AuthPrincipalDep, stream: Stream = 0
) -> Response:
    spec = ("history_keys", "", _as_is)
    return _pack(await _call(request, _read, principal, incarnation_id, spec, stream=stream))


# -- projects ---------------------------------------------------------------------------------------
def _projects(store: StoreInterface, principal: Principal, entity: str | None) -> Any:
    rows = store.list_projects(entity)
    readable = [r for r in rows if can_read(principal, r["entity"], r["name"], public=bool(r.get("public")))]
    for row in readable:  # a public project of another entity: its run count leaves its private runs out
        if not sees_private_runs(principal, row["entity"]):
            hidden = visible_runs_filter(principal, row["entity"], None)
            row["run_count"] = store.count_runs(row["entity"], row["name"], filters=hidden)
    return readable


@router.get("/projects", summary="Projects the caller may read (optionally of one entity)", responses=_BINARY)
async def list_projects(
    request: Request,
    principal: AuthPrincipalDep,
    entity: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
) -> Response:
    return _pack(await _call(request, _projects, principal, entity))
