"""`/api/v1/artifacts`: blob storage and artifact versions over HTTP, for the SDK's remote mode.

Blobs are content-addressed (sha256) and shared by artifact versions and run files. The SDK asks
which digests the server lacks (`POST .../blobs/missing`), sends only those (`PUT .../blobs/{digest}`,
streamed, verified here, idempotent) and then commits the version (`POST .../commit`), which the
server refuses while any blob is absent: an interrupted upload leaves blobs, never a half-made
version. Every route checks the caller's access to the project it names; a blob is readable through
a project only when one of that project's versions or run files names it.
Request bodies are JSON; answers are msgpack, like `/api/v1/store`, so metadata keeps NaN and big ints.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from branchline.artifacts.backend import CommitRequest, EmbeddedBackend
from branchline.artifacts.blobstores import BlobStore
from branchline.errors import UsageError
from branchline.server import run_files_api
from branchline.server.artifact_models import AliasesBody, CommitBody, DigestList, UseBody, VersionEdit
from branchline.server.auth import AuthPrincipalDep, Principal, check_access, check_incarnation_visible
from branchline.server.blob_storage import (
    blob_store,
    has_stored_file,
    lock,
    pack,
    receive,
    server_blob_url,
    stored_file,
)
from branchline.server.deps import get_store
from branchline.server.errors import ApiError
from branchline.store.interface import EntryRow, StoreInterface, VersionRow

__all__ = ["blob_store", "has_stored_file", "router", "server_blob_url", "stored_file"]

Name = Annotated[str, PathParam(min_length=1, max_length=128)]
Digest = Annotated[str, PathParam(pattern=r"^[0-9a-f]{64}$", description="The blob's sha256 (hex).")]
VersionId = Annotated[str, PathParam(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
IncarnationId = Annotated[str, PathParam(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
Role = Annotated[str, Query(pattern=r"^(logged|used)$")]

router = APIRouter(prefix="/api/v1/artifacts", tags=["artifacts"])


# -- blobs --------------------------------------------------------------------------------------------------
@router.post("/{entity}/{project}/blobs/missing", summary="Which of these sha256 digests the server lacks")
async def missing_blobs(
    entity: Name, project: Name, body: DigestList, request: Request, principal: AuthPrincipalDep
) -> Response:
    check_access(principal, entity, project, write=True)
    blobs = blob_store(request.app)
    missing = await run_in_threadpool(blobs.missing, body.digests)
    return pack({"missing": sorted(missing)})


@router.put("/{entity}/{project}/blobs/{digest}", summary="Upload a blob (streamed; verified; idempotent)")
async def put_blob(
    entity: Name, project: Name, digest: Digest, request: Request, principal: AuthPrincipalDep
) -> Response:
    check_access(principal, entity, project, write=True)
    return await receive(request, digest)


@router.get("/{entity}/{project}/blobs/{digest}", summary="Download a blob (streamed)", response_class=Response)
async def get_blob(
    entity: Name, project: Name, digest: Digest, request: Request, principal: AuthPrincipalDep
) -> Response:
    check_access(principal, entity, project)
    store = get_store(request)
    if not await run_in_threadpool(store.blob_in_project, entity, project, digest):
        raise ApiError(404, f"No blob {digest} in {entity}/{project}.", field="digest")
    blobs = blob_store(request.app)
    local = blobs.local_path(digest)
    if local is not None and not local.is_file():
        raise ApiError(404, f"Blob {digest} is missing from the server's storage.", field="digest")
    try:
        chunks = await run_in_threadpool(blobs.open, digest)
    except FileNotFoundError:
        raise ApiError(404, f"Blob {digest} is missing from the server's storage.", field="digest") from None
    return StreamingResponse(iterate_in_threadpool(chunks), media_type="application/octet-stream")


@router.get("/blob-stats", summary="How many uploads (artifact blobs, run files) this server process stored or skipped")
async def blob_stats(request: Request, principal: AuthPrincipalDep) -> Response:
    if principal.anonymous:
        raise ApiError(401, "An API key is needed to read upload statistics.", code="unauthorized")
    blob_store(request.app)
    with lock:
        return pack(dict(request.app.state.blob_stats))


# -- versions ---------------------------------------------------------------------------------------------
def _row(row: VersionRow) -> dict[str, Any]:
    return dataclasses.asdict(row)


def _owned(store: StoreInterface, principal: Principal, incarnation_id: str | None) -> None:
    """A commit or use names an incarnation: the caller must be able to write to its project."""
    if incarnation_id is None:
        return
    owner = store.incarnation_owner(incarnation_id)
    if owner is None:
        raise ApiError(404, f"No incarnation {incarnation_id!r}.", field="incarnation_id")
    check_access(principal, owner[0], owner[1], write=True)


def _version(store: StoreInterface, principal: Principal, version_id: str, *, write: bool = False) -> VersionRow:
    row = store.get_artifact(version_id)
    if row is None:
        raise ApiError(404, f"No artifact version {version_id!r}.", code="artifact_not_found", field="version_id")
    check_access(principal, row.entity, row.project, write=write)
    return row


def _commit(
    store: StoreInterface, blobs: BlobStore, principal: Principal, entity: str, project: str, body: CommitBody
) -> Any:
    check_access(principal, entity, project, write=True)
    _owned(store, principal, body.incarnation_id)
    entries = [EntryRow(e.path, e.digest, e.size, e.ref, e.extra) for e in body.entries]
    lost = blobs.missing({e.digest for e in entries if e.ref is None})
    if lost:
        raise ApiError(
            409,
            f"{len(lost)} blob(s) are not uploaded yet ({', '.join(sorted(lost)[:3])}…): upload them, then commit.",
            code="blobs_missing",
            field="entries",
        )
    request = CommitRequest(
        entity=entity,
        project=project,
        name=body.name,
        type=body.type,
        digest=body.digest,
        entries=entries,
        description=body.description,
        metadata=body.metadata,
        aliases=list(body.aliases),
        incarnation_id=body.incarnation_id,
        role=body.role,
    )
    try:
        row, created = EmbeddedBackend(store, blobs).commit(request)
    except UsageError as exc:
        raise ApiError(422, str(exc), code="invalid_request") from None
    return {"version": _row(row), "created": created}


@router.post("/{entity}/{project}/commit", summary="Create (or find) a version once all its blobs are stored")
async def commit(
    entity: Name, project: Name, body: CommitBody, request: Request, principal: AuthPrincipalDep
) -> Response:
    blobs = blob_store(request.app)
    return pack(await run_in_threadpool(_commit, get_store(request), blobs, principal, entity, project, body))


def _resolve(store: StoreInterface, principal: Principal, entity: str, project: str, name: str, spec: str) -> Any:
    check_access(principal, entity, project)
    row = store.resolve_artifact(entity, project, name, spec)
    return None if row is None else _row(row)


@router.get("/{entity}/{project}/collections/{name}/resolve", summary="The version an alias or vN names")
async def resolve(
    entity: Name,
    project: Name,
    name: Name,
    request: Request,
    principal: AuthPrincipalDep,
    spec: Annotated[str, Query(min_length=1, max_length=128)] = "latest",
) -> Response:
    return pack(await run_in_threadpool(_resolve, get_store(request), principal, entity, project, name, spec))


def _versions(store: StoreInterface, principal: Principal, entity: str, project: str, name: str) -> Any:
    check_access(principal, entity, project)
    return [_row(r) for r in store.artifact_versions(entity, project, name)]


@router.get("/{entity}/{project}/collections/{name}/versions", summary="Every version of a collection")
async def versions(entity: Name, project: Name, name: Name, request: Request, principal: AuthPrincipalDep) -> Response:
    return pack(await run_in_threadpool(_versions, get_store(request), principal, entity, project, name))


def _version_op(store: StoreInterface, principal: Principal, version_id: str, op: str, arg: Any = None) -> Any:
    if op == "get":
        return _row(_version(store, principal, version_id))
    if op == "entries":
        _version(store, principal, version_id)
        return [dataclasses.asdict(e) for e in store.artifact_entries(version_id)]
    if op == "users":
        _version(store, principal, version_id)
        return store.artifact_users(version_id, arg)
    if op == "use":
        _version(store, principal, version_id)
        _owned(store, principal, str(arg))
        store.use_artifact(version_id, str(arg))
        return {"ok": True}
    _version(store, principal, version_id, write=True)
    try:
        if op == "aliases":
            store.set_artifact_aliases(version_id, [str(a) for a in arg])
        elif op == "update":
            store.update_artifact(version_id, description=arg.description, metadata=arg.metadata)
        elif op == "delete":
            store.delete_artifact(version_id, delete_aliases=bool(arg))
    except UsageError as exc:
        raise ApiError(409, str(exc), code="conflict") from None
    return {"ok": True}


async def _op(request: Request, principal: Principal, version_id: str, op: str, arg: Any = None) -> Response:
    return pack(await run_in_threadpool(_version_op, get_store(request), principal, version_id, op, arg))


@router.get("/versions/{version_id}", summary="One version")
async def get_version(version_id: VersionId, request: Request, principal: AuthPrincipalDep) -> Response:
    return await _op(request, principal, version_id, "get")


@router.get("/versions/{version_id}/entries", summary="A version's manifest entries")
async def get_entries(version_id: VersionId, request: Request, principal: AuthPrincipalDep) -> Response:
    return await _op(request, principal, version_id, "entries")


@router.get("/versions/{version_id}/users", summary="Incarnations that logged or used the version")
async def get_users(version_id: VersionId, role: Role, request: Request, principal: AuthPrincipalDep) -> Response:
    return await _op(request, principal, version_id, "users", role)


@router.post("/versions/{version_id}/use", summary="Record that an incarnation uses the version")
async def use_version(version_id: VersionId, body: UseBody, request: Request, principal: AuthPrincipalDep) -> Response:
    return await _op(request, principal, version_id, "use", body.incarnation_id)


@router.put("/versions/{version_id}/aliases", summary="Set the version's aliases")
async def set_aliases(
    version_id: VersionId, body: AliasesBody, request: Request, principal: AuthPrincipalDep
) -> Response:
    return await _op(request, principal, version_id, "aliases", body.aliases)


@router.patch("/versions/{version_id}", summary="Edit the version's description and metadata")
async def update_version(
    version_id: VersionId, body: VersionEdit, request: Request, principal: AuthPrincipalDep
) -> Response:
    return await _op(request, principal, version_id, "update", body)


@router.delete("/versions/{version_id}", summary="Delete the version (refused while aliased unless forced)")
async def delete_version(
    version_id: VersionId, request: Request, principal: AuthPrincipalDep, delete_aliases: bool = False
) -> Response:
    return await _op(request, principal, version_id, "delete", delete_aliases)


def _run_versions(store: StoreInterface, principal: Principal, incarnation_id: str, role: str) -> Any:
    owner = store.incarnation_owner(incarnation_id)
    if owner is None:
        raise ApiError(404, f"No incarnation {incarnation_id!r}.", field="incarnation_id")
    check_access(principal, owner[0], owner[1])
    check_incarnation_visible(store, principal, owner[0], incarnation_id)
    return [_row(r) for r in store.run_artifacts(incarnation_id, role)]


@router.get("/incarnations/{incarnation_id}", summary="Versions an incarnation logged or used")
async def run_versions(
    incarnation_id: IncarnationId, role: Role, request: Request, principal: AuthPrincipalDep
) -> Response:
    return pack(await run_in_threadpool(_run_versions, get_store(request), principal, incarnation_id, role))


# Run files share the prefix; mounted last so the routes keep the order they always had.
router.include_router(run_files_api.router)
