"""Run files under `/api/v1/artifacts/files`: upload a file's content, list a run's files, download
or delete one.

Contents are blobs (server/blob_storage.py) named by the file's sha256; a file an embedded run
stored on this disk is served from there when the blob store lacks it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from branchline.server.auth import AuthPrincipalDep, Principal, check_access, check_incarnation_visible
from branchline.server.blob_storage import blob_store, pack, receive
from branchline.server.deps import get_store
from branchline.server.errors import ApiError
from branchline.server.guards import run_file_path
from branchline.server.settings import ServerSettings
from branchline.store.interface import StoreInterface

__all__ = ["router"]

IncarnationId = Annotated[str, PathParam(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]

#: Mounted under `/api/v1/artifacts` by server/blobs_api.py.
router = APIRouter(prefix="/files", tags=["artifacts"])


def _incarnation_owner(
    store: StoreInterface, principal: Principal, incarnation_id: str, *, write: bool = False
) -> None:
    owner = store.incarnation_owner(incarnation_id)
    if owner is None:
        raise ApiError(404, f"No incarnation {incarnation_id!r}.", field="incarnation_id")
    check_access(principal, owner[0], owner[1], write=write)
    check_incarnation_visible(store, principal, owner[0], incarnation_id)


@router.put("/{incarnation_id}/{path:path}", summary="Upload a run file's content (stored by sha256)")
async def put_run_file(
    incarnation_id: IncarnationId,
    path: str,
    sha256: Annotated[str, Query(pattern=r"^[0-9a-f]{64}$")],
    request: Request,
    principal: AuthPrincipalDep,
    register: bool = False,
) -> Response:
    run_file_path(path)
    store = get_store(request)
    await run_in_threadpool(_incarnation_owner, store, principal, incarnation_id, write=True)
    response = await receive(request, sha256, "files_")
    if register:  # `api_run.upload_file`: list the file with the run (runs list theirs through the journal)
        size = int(request.headers.get("content-length") or 0)
        await run_in_threadpool(store.add_run_file, incarnation_id, path, size, sha256)
    return response


def _delete_run_file(app: FastAPI, store: StoreInterface, principal: Principal, incarnation_id: str, path: str) -> Any:
    _incarnation_owner(store, principal, incarnation_id, write=True)
    local = _local_copy(app.state.settings, incarnation_id, path)
    removed = store.delete_file(incarnation_id, path)
    if removed is None:
        raise ApiError(404, f"No file {path!r} in incarnation {incarnation_id!r}.", field="path")
    if local is not None:  # the copy an embedded run wrote on this disk goes with its row
        local.unlink(missing_ok=True)
    sha = str(removed["sha256"])
    if not removed["shared"]:  # no other run file or artifact names this content any more
        try:
            blobs = blob_store(app)
        except ApiError:
            return removed  # a server without blob storage holds no copy to remove
        if not blobs.missing([sha]):
            blobs.delete(sha)
    return removed


@router.delete("/{incarnation_id}/{path:path}", summary="Delete a run file (its content too, unless shared)")
async def delete_run_file(
    incarnation_id: IncarnationId, path: str, request: Request, principal: AuthPrincipalDep
) -> Response:
    if "\x00" in path:  # as for a download: say so instead of failing inside the filesystem
        raise ApiError(422, "A file path cannot contain a NUL character.", field="path")
    store = get_store(request)
    return pack(await run_in_threadpool(_delete_run_file, request.app, store, principal, incarnation_id, path))


def _local_copy(settings: ServerSettings, incarnation_id: str, rel: str) -> Path | None:
    """The file as an embedded run stored it (`<files_dir>/<incarnation>/<path>`), if on this disk."""
    files_dir = settings.resolved_files_dir()
    if files_dir is None:
        return None
    base = (files_dir / incarnation_id).resolve()
    target = (base / rel).resolve()
    return target if base in target.parents and target.is_file() else None


def _file_rows(app: FastAPI, store: StoreInterface, principal: Principal, incarnation_id: str) -> list[dict[str, Any]]:
    _incarnation_owner(store, principal, incarnation_id)
    blobs = blob_store(app)
    rows = store.files(incarnation_id)
    absent = blobs.missing({str(r["sha256"]) for r in rows})
    settings: ServerSettings = app.state.settings
    return [
        {
            **r,
            "available": str(r["sha256"]) not in absent
            or _local_copy(settings, incarnation_id, str(r["path"])) is not None,
        }
        for r in rows
    ]


@router.get("/{incarnation_id}", summary="A run's files and whether their content is stored here")
async def list_run_files(incarnation_id: IncarnationId, request: Request, principal: AuthPrincipalDep) -> Response:
    return pack(await run_in_threadpool(_file_rows, request.app, get_store(request), principal, incarnation_id))


@router.get("/{incarnation_id}/{path:path}", summary="A run file's content (streamed)", response_class=Response)
async def get_run_file(
    incarnation_id: IncarnationId, path: str, request: Request, principal: AuthPrincipalDep
) -> Response:
    if "\x00" in path:  # the filesystem refuses NUL: say so instead of failing inside it
        raise ApiError(422, "A file path cannot contain a NUL character.", field="path")
    store = get_store(request)
    rows = await run_in_threadpool(_file_rows, request.app, store, principal, incarnation_id)
    row = next((r for r in rows if r["path"] == path), None)
    if row is None or not row["available"]:
        raise ApiError(404, f"No stored file {path!r} in incarnation {incarnation_id!r}.", field="path")
    blobs = blob_store(request.app)
    sha = str(row["sha256"])
    if not await run_in_threadpool(blobs.missing, [sha]):  # uploaded by a remote run: exactly this content
        chunks = await run_in_threadpool(blobs.open, sha)
        return StreamingResponse(iterate_in_threadpool(chunks), media_type="application/octet-stream")
    local = _local_copy(request.app.state.settings, incarnation_id, path)
    if local is None:
        raise ApiError(404, f"The content of {path!r} is not available on this server.", field="path")
    return FileResponse(local, media_type="application/octet-stream")
