"""A run's data: history keys, chart series, console logs, files, alerts and artifacts.

Every run-scoped resource answers at `/runs/{entity}/{project}/{run_id}/…` (the current incarnation)
and at `/runs/{entity}/{project}/{run_id}/incarnations/{incarnation_id}/…` (any incarnation, archived
ones included). `POST /series` and `POST /series/keys` take incarnation ids, so one request serves a
chart of many runs.
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import Callable
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query
from starlette.concurrency import iterate_in_threadpool
from starlette.responses import FileResponse, Response, StreamingResponse

from branchline.server import blobs_api
from branchline.server.auth import check_incarnation_visible, check_run_visible
from branchline.server.deps import (
    ChartPoolDep,
    EntityPath,
    IncarnationPath,
    PrincipalDep,
    ProjectPath,
    RunIdPath,
    SettingsDep,
    StoreDep,
    authorize,
    find_incarnation,
    find_run,
)
from branchline.server.errors import ApiError
from branchline.server.models import (
    AlertList,
    ArtifactList,
    ConsoleLog,
    ErrorBody,
    FileList,
    GroupSeriesRequest,
    GroupSeriesResponse,
    Key,
    KeysRequest,
    KeysResponse,
    SeriesRequest,
    SeriesResponse,
)
from branchline.server.series import chart_series, group_series, series_response
from branchline.server.settings import ServerSettings
from branchline.store.interface import RunView, StoreInterface

__all__ = ["any_incarnation", "current_run", "install_run_resources", "register_run_resources", "router"]

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody},
    404: {"model": ErrorBody},
    422: {"model": ErrorBody},
}

router = APIRouter(prefix="/api/v1", tags=["history"], responses=ERRORS)

RUN = "/api/v1/runs/{entity}/{project}/{run_id}"
INCARNATION = RUN + "/incarnations/{incarnation_id}"

StreamQuery = Annotated[int, Query(ge=0, le=1, description="0: history, 1: system metrics.")]
TEXT_SUFFIXES = frozenset(
    {".txt", ".log", ".json", ".jsonl", ".yaml", ".yml", ".md", ".py", ".csv", ".tsv", ".toml", ".cfg", ".ini", ".sh"}
)
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
#: Shown in the browser when asked `inline` (media previews): images, audio, video and HTML.
PLAYABLE_PREFIXES = ("audio/", "video/")
HTML_TYPES = frozenset({"text/html"})
# Every run file is served sandboxed: a file opened from our origin (an HTML report, an SVG) runs, if
# at all, in an opaque origin, so it can read neither our cookies nor our pages. HTML may run its own
# script (charts in a report) in that opaque origin; nothing else may run script at all.
SANDBOX = {"Content-Security-Policy": "sandbox"}
HTML_SANDBOX = {"Content-Security-Policy": "sandbox allow-scripts allow-popups"}


def current_run(
    entity: EntityPath, project: ProjectPath, run_id: RunIdPath, store: StoreDep, principal: PrincipalDep
) -> RunView:
    authorize(principal, entity, project)
    run = find_run(store, entity, project, run_id)
    check_run_visible(principal, entity, run.private, f"Run {entity}/{project}/{run_id}")
    return run


def any_incarnation(
    entity: EntityPath,
    project: ProjectPath,
    run_id: RunIdPath,
    incarnation_id: IncarnationPath,
    store: StoreDep,
    principal: PrincipalDep,
) -> RunView:
    authorize(principal, entity, project)
    view = find_incarnation(store, entity, project, run_id, incarnation_id)
    check_run_visible(principal, entity, view.private, f"Run {entity}/{project}/{run_id}")
    return view


def _keys_of(store: StoreInterface, incarnation_ids: list[str], stream: int) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    types = store.media_types(incarnation_ids, stream=stream)
    for inc_id, keys in store.history_keys_many(incarnation_ids, stream=stream).items():
        for key, info in keys.items():
            entry = merged.get(key)
            media_type = types.get(inc_id, {}).get(key)
            if entry is None:
                merged[key] = {**info, "runs": 1, "media_type": media_type}
            else:
                entry["media_type"] = entry["media_type"] or media_type
                entry["numeric"] = entry["numeric"] and info["numeric"]
                entry["count"] = max(entry["count"], info["count"])
                entry["last_step"] = max(entry["last_step"], info["last_step"])
                entry["runs"] += 1
    return dict(sorted(merged.items()))


def _series(store: StoreInterface, incarnation_ids: list[str], body: SeriesRequest) -> dict[str, Any]:
    if body.min_step is not None and body.max_step is not None and body.min_step > body.max_step:
        raise ApiError(422, "min_step is greater than max_step.", code="invalid_request", field="min_step")
    out = chart_series(
        store,
        incarnation_ids,
        body.keys,
        x=body.x,
        stream=body.stream,
        buckets=body.buckets,
        min_step=body.min_step,
        max_step=body.max_step,
    )
    return {"x": body.x, "stream": body.stream, "buckets": body.buckets, "series": out}


def _check_incarnations(store: StoreInterface, principal: Any, ids: list[str]) -> None:
    owners = store.incarnation_owners(ids)
    for index, inc_id in enumerate(ids):
        owner = owners.get(inc_id)
        if owner is None:
            raise ApiError(404, f"No incarnation {inc_id!r}.", field=f"incarnations.{index}")
        authorize(principal, *owner)
        check_incarnation_visible(store, principal, owner[0], inc_id)


@router.post("/series", response_model=SeriesResponse, summary="Chart series of many runs, downsampled (min/max)")
async def post_series(body: SeriesRequest, store: StoreDep, principal: PrincipalDep, pool: ChartPoolDep) -> Response:
    def compute() -> Response:
        _check_incarnations(store, principal, body.incarnations)
        return series_response(_series(store, body.incarnations, body))

    return await asyncio.wrap_future(pool.submit(compute))


@router.post(
    "/series/groups",
    response_model=GroupSeriesResponse,
    summary="Per-group mean and min–max band on the union of steps",
)
async def post_group_series(
    body: GroupSeriesRequest, store: StoreDep, principal: PrincipalDep, pool: ChartPoolDep
) -> Response:
    """For each group and key: the mean, minimum and maximum across the group's runs at every step
    any of them logged (full resolution), then reduced to at most `buckets` points."""
    if body.min_step is not None and body.max_step is not None and body.min_step > body.max_step:
        raise ApiError(422, "min_step is greater than max_step.", code="invalid_request", field="min_step")
    every = [inc for group in body.groups for inc in group.incarnations]
    if len(every) > 2000:
        raise ApiError(422, "At most 2000 runs across groups.", code="invalid_request", field="groups")

    def compute() -> Response:
        _check_incarnations(store, principal, list(dict.fromkeys(every)))
        out = []
        for group in body.groups:
            for key in dict.fromkeys(body.keys):
                stats = group_series(
                    store,
                    group.incarnations,
                    key,
                    stream=body.stream,
                    buckets=body.buckets,
                    min_step=body.min_step,
                    max_step=body.max_step,
                )
                out.append({"group": group.name, **stats})
        return series_response({"x": "_step", "stream": body.stream, "buckets": body.buckets, "series": out})

    return await asyncio.wrap_future(pool.submit(compute))


@router.post("/series/keys", response_model=KeysResponse, summary="History keys logged by any of the runs")
def post_keys(body: KeysRequest, store: StoreDep, principal: PrincipalDep) -> dict[str, Any]:
    _check_incarnations(store, principal, body.incarnations)
    return {"stream": body.stream, "keys": _keys_of(store, body.incarnations, body.stream)}


def _safe_relpath(path: str) -> str:
    if "\x00" in path:  # the filesystem refuses NUL: say so instead of failing inside it
        raise ApiError(422, "A file path cannot contain a NUL character.", code="invalid_request", field="path")
    pure = PurePosixPath(path)
    parts = [p for p in pure.parts if p not in ("", ".")]
    if pure.is_absolute() or not parts or ".." in parts:
        raise ApiError(422, f"{path!r} is not a file path inside the run.", code="invalid_request", field="path")
    return "/".join(parts)


def _file_location(files_dir: Path | None, incarnation_id: str, rel: str) -> Path | None:
    if files_dir is None:
        return None
    base = (files_dir / incarnation_id).resolve()
    target = (base / rel).resolve()
    if base not in target.parents or not target.is_file():
        return None
    return target


def register_run_resources(app_router: APIRouter, prefix: str, resolve: Callable[..., RunView]) -> None:
    """Add the run-scoped resources under `prefix`, resolving the incarnation with `resolve`."""
    target = Depends(resolve)
    _register_history(app_router, prefix, target)
    _register_files(app_router, prefix, target)


def _register_history(app_router: APIRouter, prefix: str, target: Any) -> None:
    """History keys, chart series and console output of one run."""
    tags: list[str | Enum] = ["runs"]

    @app_router.get(prefix + "/keys", response_model=KeysResponse, tags=tags, responses=ERRORS)
    def history_keys(store: StoreDep, stream: StreamQuery = 0, view: RunView = target) -> dict[str, Any]:
        """Every key in the run's history (stream 0) or system metrics (stream 1)."""
        return {"stream": stream, "keys": _keys_of(store, [view.incarnation_id], stream)}

    @app_router.get(prefix + "/series", response_model=SeriesResponse, tags=tags, responses=ERRORS)
    def run_series(
        store: StoreDep,
        keys: Annotated[list[Key], Query(min_length=1, max_length=200, description="Keys to chart.")],
        x: Annotated[str, Query(min_length=1, max_length=512)] = "_step",
        stream: StreamQuery = 0,
        buckets: Annotated[int, Query(ge=1, le=20_000)] = 1000,
        min_step: Annotated[int | None, Query(ge=0)] = None,
        max_step: Annotated[int | None, Query(ge=0)] = None,
        view: RunView = target,
    ) -> Response:
        """This run's chart series, downsampled keeping each bucket's min and max."""
        body = SeriesRequest(
            incarnations=[view.incarnation_id],
            keys=keys,
            x=x,
            stream=stream,  # type: ignore[arg-type]
            buckets=buckets,
            min_step=min_step,
            max_step=max_step,
        )
        return series_response(_series(store, [view.incarnation_id], body))

    @app_router.get(prefix + "/logs", response_model=ConsoleLog, tags=tags, responses=ERRORS)
    def console_log(
        store: StoreDep,
        since: Annotated[int, Query(ge=0, description="First line number to return.")] = 0,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 20_000,
        view: RunView = target,
    ) -> dict[str, Any]:
        """Console output, oldest first; poll with `since=next_line` for new lines only."""
        lines = [line for line in store.console_lines(view.incarnation_id) if line["line_no"] >= since][:limit]
        next_line = lines[-1]["line_no"] + 1 if lines else since
        return {"incarnation_id": view.incarnation_id, "lines": lines, "next_line": next_line}


def _register_files(app_router: APIRouter, prefix: str, target: Any) -> None:
    """Files, alerts and artifacts of one run."""
    tags: list[str | Enum] = ["runs"]

    @app_router.get(prefix + "/files", response_model=FileList, tags=tags, responses=ERRORS)
    def list_files(store: StoreDep, settings: SettingsDep, view: RunView = target) -> dict[str, Any]:
        """Files stored with the run."""
        files_dir = settings.resolved_files_dir()
        rows = []
        for row in store.files(view.incarnation_id):
            location = _file_location(files_dir, view.incarnation_id, str(row["path"]))
            available = location is not None or blobs_api.has_stored_file(settings, str(row["sha256"]))
            rows.append({**row, "available": available})
        return {"incarnation_id": view.incarnation_id, "files": rows}

    @app_router.get(
        prefix + "/files/{path:path}",
        tags=tags,
        responses={**ERRORS, 200: {"content": {"application/octet-stream": {}}, "description": "The content."}},
        response_class=Response,
    )
    def get_file(
        path: str,
        store: StoreDep,
        settings: SettingsDep,
        inline: Annotated[bool, Query(description="Show text and images in the browser.")] = False,
        view: RunView = target,
    ) -> Response:
        """A stored file's content (an attachment unless `inline` and it is text or an image)."""
        return _file_response(store, settings, view, path, inline)

    @app_router.get(prefix + "/alerts", response_model=AlertList, tags=tags, responses=ERRORS)
    def list_alerts(store: StoreDep, view: RunView = target) -> dict[str, Any]:
        """Alerts the run raised with `run.alert()`."""
        return {"incarnation_id": view.incarnation_id, "alerts": store.alerts(view.incarnation_id)}

    @app_router.get(prefix + "/artifacts", response_model=ArtifactList, tags=tags, responses=ERRORS)
    def list_artifacts(store: StoreDep, view: RunView = target) -> dict[str, Any]:
        """Artifact versions the run logged (outputs) and used (inputs)."""
        return {"incarnation_id": view.incarnation_id, **store.run_artifact_summaries(view.incarnation_id)}


def _file_response(store: StoreInterface, settings: ServerSettings, view: RunView, path: str, inline: bool) -> Response:
    """A run file's content: from the run files directory, else from blob storage by its sha256."""
    rel = _safe_relpath(path)
    digests = {str(row["path"]): str(row["sha256"]) for row in store.files(view.incarnation_id)}
    if rel not in digests:
        raise ApiError(404, f"Run {view.path} has no file {rel!r}.", field="path")
    location = _file_location(settings.resolved_files_dir(), view.incarnation_id, rel)
    guessed = mimetypes.guess_type(rel)[0] or "application/octet-stream"
    if guessed == "audio/x-wav":
        guessed = "audio/wav"
    name = PurePosixPath(rel).name
    headers = {"X-Content-Type-Options": "nosniff", **(HTML_SANDBOX if guessed in HTML_TYPES else SANDBOX)}
    shown = guessed in IMAGE_TYPES or guessed in HTML_TYPES or guessed.startswith(PLAYABLE_PREFIXES)
    if location is None:  # uploaded by a remote run: in blob storage by its sha256
        found = blobs_api.stored_file(settings, digests[rel])
        if found is None:
            raise ApiError(404, f"The content of {rel!r} is not available on this server.", field="path")
        if not isinstance(found, Path):
            disposition = {"Content-Disposition": f'attachment; filename="{name}"'} if not inline else {}
            if inline and PurePosixPath(rel).suffix.lower() in TEXT_SUFFIXES:
                guessed = "text/plain; charset=utf-8"
            return StreamingResponse(
                iterate_in_threadpool(found), media_type=guessed, headers={**headers, **disposition}
            )
        location = found
    if inline and PurePosixPath(rel).suffix.lower() in TEXT_SUFFIXES:
        return FileResponse(location, media_type="text/plain; charset=utf-8", headers=headers)
    if inline and shown:
        return FileResponse(location, media_type=guessed, headers=headers)
    return FileResponse(location, media_type=guessed, filename=name, headers=headers)


def install_run_resources(app: FastAPI) -> None:
    """Mount the run-scoped resources for the current incarnation and for any incarnation."""
    scoped = APIRouter()
    register_run_resources(scoped, RUN, current_run)
    register_run_resources(scoped, INCARNATION, any_incarnation)
    app.include_router(scoped)
    app.include_router(router)
