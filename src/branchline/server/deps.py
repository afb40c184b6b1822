"""Request dependencies: the open store, who is calling, and resolving runs and incarnations.

Authorization has one entry point, `authorize`, called for every project a request touches; it
applies server/auth.py's rules (API keys, team membership, public projects, read-only servers).
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Annotated

from fastapi import Depends, Path, Request

from branchline.server.auth import Principal, check_access, get_principal
from branchline.server.errors import ApiError
from branchline.server.settings import ServerSettings
from branchline.store.interface import RunView, StoreInterface

__all__ = [
    "EntityPath",
    "IncarnationPath",
    "Principal",
    "PrincipalDep",
    "ProjectPath",
    "RunIdPath",
    "ChartPoolDep",
    "SettingsDep",
    "StoreDep",
    "authorize",
    "current_principal",
    "find_incarnation",
    "find_run",
    "get_settings",
    "get_store",
]


def get_settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


def get_store(request: Request) -> StoreInterface:
    """The app's open store, typed by its interface: routes ask it nothing else."""
    store: StoreInterface | None = getattr(request.app.state, "store", None)
    if store is None:
        raise ApiError(503, "The store is not open: the app's lifespan has not started.", code="unavailable")
    return store


def get_chart_pool(request: Request) -> Executor:
    pool: Executor | None = getattr(request.app.state, "chart_pool", None)
    if pool is None:
        raise ApiError(503, "The server is not started: the app's lifespan has not begun.", code="unavailable")
    return pool


async def current_principal(request: Request) -> Principal:
    """Who is calling: an API key's user, anonymous, or (auth off) the local user (server/auth.py)."""
    return await get_principal(request)


StoreDep = Annotated[StoreInterface, Depends(get_store)]
#: Where chart series are computed: one thread, so concurrent panels queue instead of thrashing the
#: GIL (a SQLite row fetch gives it up and waits to get it back behind every other busy thread).
ChartPoolDep = Annotated[Executor, Depends(get_chart_pool)]
SettingsDep = Annotated[ServerSettings, Depends(get_settings)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]

EntityPath = Annotated[str, Path(min_length=1, max_length=128, description="Entity (user or team).")]
ProjectPath = Annotated[str, Path(min_length=1, max_length=128, description="Project name.")]
RunIdPath = Annotated[str, Path(min_length=1, max_length=128, description="The run's id (as in `id=`).")]
IncarnationPath = Annotated[
    str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$", description="An incarnation's id.")
]


def authorize(principal: Principal, entity: str, project: str, *, write: bool = False) -> None:
    """Refuse the request unless `principal` may read (or write) `entity/project` (server/auth.py)."""
    check_access(principal, entity, project, write=write)


def find_run(store: StoreInterface, entity: str, project: str, run_id: str) -> RunView:
    view = store.get_run(entity, project, run_id)
    if view is None:
        raise ApiError(404, f"Run {entity}/{project}/{run_id} not found.", field="run_id")
    return view


def find_incarnation(store: StoreInterface, entity: str, project: str, run_id: str, incarnation_id: str) -> RunView:
    """An incarnation (current or archived) of the run at `entity/project/run_id`."""
    run = find_run(store, entity, project, run_id)
    if incarnation_id == run.incarnation_id:
        return run
    view = store.get_incarnation(incarnation_id)
    if view is None or view.pk != run.pk:
        raise ApiError(404, f"Run {run.path} has no incarnation {incarnation_id!r}.", field="incarnation_id")
    return view
