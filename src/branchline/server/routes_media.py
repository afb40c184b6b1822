"""Media of many runs: a key's logged descriptors per run, and their files along the lineage.

`POST /api/v1/media` answers a media key's values (image, table, histogram, audio, ... descriptors)
for several runs at once, each file in a descriptor given a `url`. The URL is
`GET /api/v1/media/files/{incarnation_id}/{path}`, which finds the file with the incarnation or,
for the steps a fork or a rewind inherited, with its source: the history value and its file belong
to the incarnation that logged them.
"""

from __future__ import annotations

import asyncio
import mimetypes
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Query
from starlette.concurrency import iterate_in_threadpool
from starlette.responses import FileResponse, Response, StreamingResponse

from branchline.artifacts import run_tables
from branchline.server import blobs_api, client_tables
from branchline.server.auth import check_incarnation_visible
from branchline.server.deps import ChartPoolDep, IncarnationPath, PrincipalDep, SettingsDep, StoreDep, authorize
from branchline.server.errors import ApiError
from branchline.server.models import ErrorBody, MediaRequest, MediaResponse
from branchline.server.routes_data import SANDBOX, _check_incarnations, _file_response, _safe_relpath
from branchline.store.interface import StoreInterface

__all__ = ["file_url", "router", "thin", "with_urls"]

router = APIRouter(
    prefix="/api/v1/media",
    tags=["media"],
    responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)

#: Descriptor types whose `path` names a run file.
FILE_TYPES = frozenset(
    {"image-file", "table-file", "audio-file", "video-file", "html-file", "mask", "boxes2D", "object3D-file"}
)
_MAX_DEPTH = 6


def file_url(incarnation_id: str, path: str) -> str:
    """Where the web app reads a media file of `incarnation_id` (or of its sources)."""
    return f"/api/v1/media/files/{quote(incarnation_id, safe='')}/{quote(path, safe='/')}"


def with_urls(value: Any, incarnation_id: str, depth: int = 0) -> Any:
    """The descriptor with a `url` beside each file `path` (masks, list members included). A list of
    images logged by the wandb client (file names and captions only) also gets its `images`."""
    if depth > _MAX_DEPTH:
        return value
    if isinstance(value, list):
        return [with_urls(item, incarnation_id, depth + 1) for item in value]
    if not isinstance(value, dict):
        return value
    out = {key: with_urls(item, incarnation_id, depth + 1) for key, item in value.items()}
    if out.get("_type") in FILE_TYPES and isinstance(out.get("path"), str):
        out["url"] = file_url(incarnation_id, out["path"])
        if run_tables.is_client_table(out):  # the file route reads the whole table from this artifact entry
            out["url"] += f"?artifact_path={quote(str(out['artifact_path']), safe='')}"
    if out.get("_type") == "images/separated" and not isinstance(out.get("images"), list):
        names = [name for name in out.get("filenames") or [] if isinstance(name, str)]
        captions = out.get("captions") or []
        out["images"] = [
            {
                "_type": "image-file",
                "path": name,
                "url": file_url(incarnation_id, name),
                **({"caption": captions[i]} if i < len(captions) else {}),
            }
            for i, name in enumerate(names)
        ]
    return out


def thin(values: list[tuple[int, Any]], limit: int) -> list[tuple[int, Any]]:
    """At most `limit` values, evenly spaced over the list, the first and the last kept."""
    if len(values) <= limit:
        return values
    if limit == 1:
        return values[-1:]
    last = len(values) - 1
    picks = sorted({round(i * last / (limit - 1)) for i in range(limit)})
    return [values[i] for i in picks]


def _media(store: StoreInterface, body: MediaRequest) -> dict[str, Any]:
    runs = []
    bounds: dict[str, int] = {"stream": body.stream}
    if body.min_step is not None:
        bounds["min_step"] = body.min_step
    if body.max_step is not None:
        bounds["max_step"] = body.max_step
    for inc_id in dict.fromkeys(body.incarnations):
        values = [(step, value) for step, value in store.read_objects(inc_id, body.key, **bounds) if value is not None]
        kept = thin(values, body.limit)
        steps = [{"step": step, "value": with_urls(value, inc_id)} for step, value in kept]
        runs.append({"incarnation_id": inc_id, "count": len(values), "steps": steps})
    return {"key": body.key, "stream": body.stream, "runs": runs}


@router.post("", response_model=MediaResponse, summary="A media key's values (descriptors with file URLs) of many runs")
async def post_media(body: MediaRequest, store: StoreDep, principal: PrincipalDep, pool: ChartPoolDep) -> Any:
    if body.min_step is not None and body.max_step is not None and body.min_step > body.max_step:
        raise ApiError(422, "min_step is greater than max_step.", code="invalid_request", field="min_step")

    def compute() -> dict[str, Any]:
        _check_incarnations(store, principal, body.incarnations)
        return _media(store, body)

    return await asyncio.wrap_future(pool.submit(compute))


@router.get(
    "/files/{incarnation_id}/{path:path}",
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The content."}},
    response_class=Response,
    summary="A media file of a run, found along its lineage (a fork reads its source's files)",
)
def get_media_file(
    incarnation_id: IncarnationPath,
    path: str,
    store: StoreDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    inline: Annotated[bool, Query(description="Show it in the browser (the default for media).")] = True,
    artifact_path: Annotated[
        str | None, Query(max_length=1000, description="A wandb client's table descriptor's artifact_path.")
    ] = None,
    sha256: Annotated[
        str | None, Query(pattern="^[0-9a-f]{64}$", description="The content wanted (a table cell's sha256).")
    ] = None,
) -> Response:
    """The file `path` of the incarnation, or of the first source up its lineage that has it. Served
    with `Content-Security-Policy: sandbox` (HTML may run script, in an opaque origin only).

    A table the wandb client logged is served whole (its run file has plain cells only): from the
    `run_table` artifact the run logged, its media cells given URLs; and a file that is no run
    file (such a table's image cell) is read from those artifacts by path (and `sha256`)."""
    rel = _safe_relpath(path)
    chain = [inc for inc, _ in reversed(store.lineage(incarnation_id))] or [incarnation_id]
    owners = store.incarnation_owners(chain)
    if incarnation_id not in owners:
        raise ApiError(404, f"No incarnation {incarnation_id!r}.", field="incarnation_id")
    authorize(principal, *owners[incarnation_id])
    check_incarnation_visible(store, principal, owners[incarnation_id][0], incarnation_id)
    for inc in chain:
        owner = owners.get(inc)
        if owner is None or (owner != owners[incarnation_id] and not _may_read(principal, owner)):
            continue
        if any(row["path"] == rel for row in store.files(inc)):
            view = store.get_incarnation(inc)
            if view is None:
                continue
            full = client_tables.full_table(store, settings, inc, rel, artifact_path)
            if full is not None:
                return Response(orjson.dumps(_cell_urls(full, inc)), media_type="application/json")
            response = _file_response(store, settings, view, rel, inline)
            # Media paths carry their content's hash: the bytes at one never change.
            if rel.startswith("media/"):
                response.headers["Cache-Control"] = "private, max-age=86400"
            return response
    for inc in chain:
        owner = owners.get(inc)
        if owner is None or (owner != owners[incarnation_id] and not _may_read(principal, owner)):
            continue
        digest = client_tables.artifact_file(store, inc, rel, sha256)
        if digest is not None:
            return _blob_response(settings, digest, rel)
    raise ApiError(404, f"No media file {rel!r} in incarnation {incarnation_id!r} or its sources.", field="path")


def _cell_urls(table: dict[str, Any], incarnation_id: str) -> dict[str, Any]:
    """The table with a URL on each media cell (and its masks), pinned to the cell's content."""

    def pin(value: Any, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            return value
        if isinstance(value, list):
            return [pin(item, depth + 1) for item in value]
        if not isinstance(value, dict):
            return value
        out = {key: pin(item, depth + 1) for key, item in value.items()}
        if isinstance(out.get("url"), str) and isinstance(out.get("sha256"), str) and "?" not in out["url"]:
            out["url"] += f"?sha256={quote(out['sha256'], safe='')}"
        return out

    return {**table, "data": pin(with_urls(table.get("data") or [], incarnation_id))}


def _blob_response(settings: SettingsDep, digest: str, rel: str) -> Response:
    """A file kept in blob storage (an artifact entry), served as media files are."""
    found = blobs_api.stored_file(settings, digest)
    if found is None:
        raise ApiError(404, f"The content of {rel!r} is not available on this server.", field="path")
    media_type = mimetypes.guess_type(rel)[0] or "application/octet-stream"
    # Artifact entries never change under a digest: the response may be cached.
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=86400", **SANDBOX}
    if isinstance(found, Path):
        return FileResponse(found, media_type=media_type, headers=headers)
    return StreamingResponse(iterate_in_threadpool(found), media_type=media_type, headers=headers)


def _may_read(principal: Any, owner: tuple[str, str]) -> bool:
    try:
        authorize(principal, *owner)
    except ApiError:
        return False
    return True
