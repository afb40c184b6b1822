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

import contextlib
import dataclasses
import hashlib
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import msgpack
from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import and_, exists, select
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from branchline.artifacts.backend import LOGGED, CommitRequest, EmbeddedBackend
from branchline.artifacts.blobs import BlobStore, LocalBlobStore, open_blob_store, resolve_blob_url
from branchline.artifacts.naming import validate_aliases, validate_name, validate_type
from branchline.errors import UsageError
from branchline.server.auth import AuthPrincipalDep, Principal, check_access
from branchline.server.errors import ApiError
from branchline.server.settings import ServerSettings
from branchline.store import Store
from branchline.store.artifacts import EntryRow, VersionRow
from branchline.store.schema import (
    artifact_collections,
    artifact_entries,
    artifact_versions,
    incarnations,
    projects,
    run_files,
    runs,
)

__all__ = ["blob_store", "has_stored_file", "router", "server_blob_url", "stored_file"]

MSGPACK = "application/msgpack"
_CHUNK = 1 << 20
_MAX_MISSING = 100_000

Name = Annotated[str, PathParam(min_length=1, max_length=128)]
Digest = Annotated[str, PathParam(pattern=r"^[0-9a-f]{64}$", description="The blob's sha256 (hex).")]
VersionId = Annotated[str, PathParam(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
IncarnationId = Annotated[str, PathParam(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
Role = Annotated[str, Query(pattern=r"^(logged|used)$")]

router = APIRouter(prefix="/api/v1/artifacts", tags=["artifacts"])

Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
_HEX = re.compile(r"[0-9a-f]{64}")
Short = Annotated[str, StringConstraints(min_length=1, max_length=128)]


def _storable(value: Any, where: str = "") -> Any:
    """Free-form JSON is stored and sent back as UTF-8: a lone surrogate (valid in JSON's \\u escapes,
    not in UTF-8) is refused here with its place named, instead of failing after the commit."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where or 'a value'} is not valid Unicode (a lone surrogate)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key, f"the key {where}.{key!r}" if where else f"the key {key!r}")
            _storable(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _storable(item, f"{where}[{index}]")
    return value


#: A JSON object the store can keep: any shape, valid Unicode throughout.
JsonObject = Annotated[dict[str, Any], AfterValidator(_storable)]


class DigestList(BaseModel):
    """`POST .../blobs/missing`: the digests to check."""

    model_config = ConfigDict(extra="forbid")
    digests: Annotated[list[Hex], Field(max_length=_MAX_MISSING)]


class EntryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    digest: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    size: int | None = None
    ref: Annotated[str, StringConstraints(max_length=4096)] | None = None
    extra: JsonObject | None = None

    @model_validator(mode="after")
    def _stored_entries_name_a_blob(self) -> EntryBody:
        # A stored entry's digest names its blob (a file path on the server): only sha256 hex.
        if self.ref is None and not _HEX.fullmatch(self.digest):
            raise ValueError(f"entry {self.path!r}: digest must be the file's sha256 as 64 lowercase hex characters")
        return self


def _sdk_rule(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """An SDK validator (which raises UsageError) as a pydantic one: the same rule, the same words."""

    def validate(value: Any) -> Any:
        try:
            return check(value)
        except UsageError as exc:
            raise ValueError(str(exc)) from None

    return validate


ArtifactName = Annotated[str, AfterValidator(_sdk_rule(validate_name))]
ArtifactType = Annotated[str, AfterValidator(_sdk_rule(validate_type))]
ArtifactAlias = Annotated[str, AfterValidator(_sdk_rule(lambda alias: validate_aliases([alias])[0]))]


class CommitBody(BaseModel):
    """`POST .../commit`: a version's manifest, aliases and the incarnation that logged or used it."""

    model_config = ConfigDict(extra="forbid")
    name: ArtifactName
    type: ArtifactType
    digest: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    entries: Annotated[list[EntryBody], Field(max_length=10_000_000)]
    description: Annotated[str, StringConstraints(max_length=1_000_000)] | None = None
    metadata: JsonObject = Field(default_factory=dict)
    aliases: Annotated[list[ArtifactAlias], Field(max_length=1000)] = Field(default_factory=list)
    incarnation_id: Annotated[str, StringConstraints(max_length=32)] | None = None
    role: Annotated[str, StringConstraints(pattern=r"^(logged|used)$")] = LOGGED


class UseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    incarnation_id: Annotated[str, StringConstraints(min_length=1, max_length=32)]


class AliasesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    aliases: Annotated[list[ArtifactAlias], Field(max_length=1000)]


class VersionEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: Annotated[str, StringConstraints(max_length=1_000_000)] | None = None
    metadata: JsonObject = Field(default_factory=dict)


_lock = threading.Lock()


# -- storage ------------------------------------------------------------------------------------------
def server_blob_url(settings: ServerSettings) -> str:
    """Where this server keeps blobs: `--artifacts`, else $BRANCHLINE_ARTIFACT_STORAGE, else `blobs/`
    beside an SQLite store or the run files directory."""
    explicit = getattr(settings, "artifacts_url", None)
    try:
        return resolve_blob_url(settings.store_url, explicit)
    except UsageError:
        files_dir = settings.resolved_files_dir()
        if files_dir is None:
            raise
        return (files_dir.resolve().parent / "blobs").as_uri()


def blob_store(app: FastAPI) -> BlobStore:
    """The app's blob store, opened on first use."""
    found: BlobStore | None = getattr(app.state, "blob_store", None)
    if found is not None:
        return found
    with _lock:
        found = getattr(app.state, "blob_store", None)
        if found is None:
            try:
                found = open_blob_store(server_blob_url(app.state.settings))
            except UsageError as exc:
                raise ApiError(503, f"This server has no artifact storage: {exc}", code="unavailable") from None
            app.state.blob_store = found
            app.state.blob_stats = {
                "uploaded": 0,
                "already_present": 0,
                "files_uploaded": 0,
                "files_already_present": 0,
            }
    return found


def _store(request: Request) -> Store:
    store: Store | None = getattr(request.app.state, "store", None)
    if store is None:
        raise ApiError(503, "The store is not open: the app's lifespan has not started.", code="unavailable")
    return store


def _pack(value: Any, status: int = 200) -> Response:
    return Response(content=msgpack.packb(value, use_bin_type=True), media_type=MSGPACK, status_code=status)


def _count(request: Request, what: str) -> None:
    stats: dict[str, int] = request.app.state.blob_stats
    with _lock:
        stats[what] += 1


# -- who may see a blob ---------------------------------------------------------------------------------
def _blob_in_project(store: Store, entity: str, project: str, digest: str) -> bool:
    """Whether a version or a run file of `entity/project` names blob `digest`."""
    in_versions = (
        select(artifact_entries.c.digest)
        .select_from(artifact_entries)
        .join(artifact_versions, artifact_versions.c.id == artifact_entries.c.version_id)
        .join(artifact_collections, artifact_collections.c.id == artifact_versions.c.collection_id)
        .join(projects, projects.c.id == artifact_collections.c.project_id)
        .where(
            and_(
                artifact_entries.c.digest == digest,
                artifact_entries.c.ref.is_(None),
                projects.c.entity == entity,
                projects.c.name == project,
            )
        )
    )
    in_files = (
        select(run_files.c.sha256)
        .select_from(run_files)
        .join(incarnations, incarnations.c.id == run_files.c.incarnation_id)
        .join(runs, runs.c.pk == incarnations.c.run_pk)
        .join(projects, projects.c.id == runs.c.project_id)
        .where(and_(run_files.c.sha256 == digest, projects.c.entity == entity, projects.c.name == project))
    )
    with store.engine.connect() as conn:
        return bool(conn.execute(select(exists(in_versions) | exists(in_files))).scalar())


# -- blobs --------------------------------------------------------------------------------------------------
@router.post("/{entity}/{project}/blobs/missing", summary="Which of these sha256 digests the server lacks")
async def missing_blobs(
    entity: Name, project: Name, body: DigestList, request: Request, principal: AuthPrincipalDep
) -> Response:
    check_access(principal, entity, project, write=True)
    blobs = blob_store(request.app)
    missing = await run_in_threadpool(blobs.missing, body.digests)
    return _pack({"missing": sorted(missing)})


def _finish_upload(blobs: BlobStore, digest: str, tmp: Path) -> None:
    if isinstance(blobs, LocalBlobStore):
        final = blobs.path(digest)
        os.chmod(tmp, 0o444)
        final.parent.mkdir(exist_ok=True)
        os.replace(tmp, final)
    else:
        blobs.put_file(digest, str(tmp))


async def _receive(request: Request, digest: str, prefix: str = "") -> Response:
    """Stream the body into a temp file, check its sha256, then store it as blob `digest`."""
    blobs = blob_store(request.app)
    if not await run_in_threadpool(blobs.missing, [digest]):
        _count(request, prefix + "already_present")
        return _pack({"digest": digest, "stored": False})
    tmp_dir = blobs._tmp if isinstance(blobs, LocalBlobStore) else Path(tempfile.gettempdir())
    tmp = tmp_dir / f"{digest[:16]}.upload.{os.getpid()}.{secrets.token_hex(4)}"
    h = hashlib.sha256()
    size = 0
    try:
        with open(tmp, "wb") as out:

            def flush(data: bytes) -> None:
                h.update(data)
                out.write(data)

            # Hash and write in a worker thread, a megabyte at a time, so the event loop stays free.
            buffer = bytearray()
            async for chunk in request.stream():
                buffer += chunk
                size += len(chunk)
                if len(buffer) >= _CHUNK:
                    await run_in_threadpool(flush, bytes(buffer))
                    buffer.clear()
            if buffer:
                await run_in_threadpool(flush, bytes(buffer))
        if h.hexdigest() != digest:
            raise ApiError(
                422,
                f"The uploaded bytes hash to {h.hexdigest()}, not {digest}: nothing was stored.",
                code="digest_mismatch",
                field="digest",
            )
        await run_in_threadpool(_finish_upload, blobs, digest, tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _count(request, prefix + "uploaded")
    return _pack({"digest": digest, "stored": True, "size": size}, status=201)


@router.put("/{entity}/{project}/blobs/{digest}", summary="Upload a blob (streamed; verified; idempotent)")
async def put_blob(
    entity: Name, project: Name, digest: Digest, request: Request, principal: AuthPrincipalDep
) -> Response:
    check_access(principal, entity, project, write=True)
    return await _receive(request, digest)


@router.get("/{entity}/{project}/blobs/{digest}", summary="Download a blob (streamed)", response_class=Response)
async def get_blob(
    entity: Name, project: Name, digest: Digest, request: Request, principal: AuthPrincipalDep
) -> Response:
    check_access(principal, entity, project)
    store = _store(request)
    if not await run_in_threadpool(_blob_in_project, store, entity, project, digest):
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
    with _lock:
        return _pack(dict(request.app.state.blob_stats))


# -- versions ---------------------------------------------------------------------------------------------
def _row(row: VersionRow) -> dict[str, Any]:
    return dataclasses.asdict(row)


def _owned(store: Store, principal: Principal, incarnation_id: str | None) -> None:
    """A commit or use names an incarnation: the caller must be able to write to its project."""
    if incarnation_id is None:
        return
    owner = store.incarnation_owner(incarnation_id)
    if owner is None:
        raise ApiError(404, f"No incarnation {incarnation_id!r}.", field="incarnation_id")
    check_access(principal, owner[0], owner[1], write=True)


def _version(store: Store, principal: Principal, version_id: str, *, write: bool = False) -> VersionRow:
    row = store.get_artifact(version_id)
    if row is None:
        raise ApiError(404, f"No artifact version {version_id!r}.", code="artifact_not_found", field="version_id")
    check_access(principal, row.entity, row.project, write=write)
    return row


def _commit(store: Store, blobs: BlobStore, principal: Principal, entity: str, project: str, body: CommitBody) -> Any:
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
    return _pack(await run_in_threadpool(_commit, _store(request), blobs, principal, entity, project, body))


def _resolve(store: Store, principal: Principal, entity: str, project: str, name: str, spec: str) -> Any:
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
    return _pack(await run_in_threadpool(_resolve, _store(request), principal, entity, project, name, spec))


def _versions(store: Store, principal: Principal, entity: str, project: str, name: str) -> Any:
    check_access(principal, entity, project)
    return [_row(r) for r in store.artifact_versions(entity, project, name)]


@router.get("/{entity}/{project}/collections/{name}/versions", summary="Every version of a collection")
async def versions(entity: Name, project: Name, name: Name, request: Request, principal: AuthPrincipalDep) -> Response:
    return _pack(await run_in_threadpool(_versions, _store(request), principal, entity, project, name))


def _version_op(store: Store, principal: Principal, version_id: str, op: str, arg: Any = None) -> Any:
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
    return _pack(await run_in_threadpool(_version_op, _store(request), principal, version_id, op, arg))


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


def _run_versions(store: Store, principal: Principal, incarnation_id: str, role: str) -> Any:
    owner = store.incarnation_owner(incarnation_id)
    if owner is None:
        raise ApiError(404, f"No incarnation {incarnation_id!r}.", field="incarnation_id")
    check_access(principal, owner[0], owner[1])
    return [_row(r) for r in store.run_artifacts(incarnation_id, role)]


@router.get("/incarnations/{incarnation_id}", summary="Versions an incarnation logged or used")
async def run_versions(
    incarnation_id: IncarnationId, role: Role, request: Request, principal: AuthPrincipalDep
) -> Response:
    return _pack(await run_in_threadpool(_run_versions, _store(request), principal, incarnation_id, role))


# -- run files ---------------------------------------------------------------------------------------------
def _incarnation_owner(store: Store, principal: Principal, incarnation_id: str, *, write: bool = False) -> None:
    owner = store.incarnation_owner(incarnation_id)
    if owner is None:
        raise ApiError(404, f"No incarnation {incarnation_id!r}.", field="incarnation_id")
    check_access(principal, owner[0], owner[1], write=write)


@router.put("/files/{incarnation_id}/{path:path}", summary="Upload a run file's content (stored by sha256)")
async def put_run_file(
    incarnation_id: IncarnationId,
    path: str,
    sha256: Annotated[str, Query(pattern=r"^[0-9a-f]{64}$")],
    request: Request,
    principal: AuthPrincipalDep,
    register: bool = False,
) -> Response:
    if "\x00" in path:
        raise ApiError(422, "A file path cannot contain a NUL character.", field="path")
    store = _store(request)
    await run_in_threadpool(_incarnation_owner, store, principal, incarnation_id, write=True)
    response = await _receive(request, sha256, "files_")
    if register:  # `api_run.upload_file`: list the file with the run (runs list theirs through the journal)
        parts = PurePosixPath(path).parts
        if PurePosixPath(path).is_absolute() or ".." in parts:
            raise ApiError(422, f"{path!r} is not a file path inside the run.", field="path")
        size = int(request.headers.get("content-length") or 0)
        await run_in_threadpool(store.add_run_file, incarnation_id, path, size, sha256)
    return response


def _local_copy(settings: ServerSettings, incarnation_id: str, rel: str) -> Path | None:
    """The file as an embedded run stored it (`<files_dir>/<incarnation>/<path>`), if on this disk."""
    files_dir = settings.resolved_files_dir()
    if files_dir is None:
        return None
    base = (files_dir / incarnation_id).resolve()
    target = (base / rel).resolve()
    return target if base in target.parents and target.is_file() else None


def _file_rows(app: FastAPI, store: Store, principal: Principal, incarnation_id: str) -> list[dict[str, Any]]:
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


@router.get("/files/{incarnation_id}", summary="A run's files and whether their content is stored here")
async def list_run_files(incarnation_id: IncarnationId, request: Request, principal: AuthPrincipalDep) -> Response:
    return _pack(await run_in_threadpool(_file_rows, request.app, _store(request), principal, incarnation_id))


@router.get("/files/{incarnation_id}/{path:path}", summary="A run file's content (streamed)", response_class=Response)
async def get_run_file(
    incarnation_id: IncarnationId, path: str, request: Request, principal: AuthPrincipalDep
) -> Response:
    if "\x00" in path:  # the filesystem refuses NUL: say so instead of failing inside it
        raise ApiError(422, "A file path cannot contain a NUL character.", field="path")
    store = _store(request)
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


def _settings_blobs(settings: ServerSettings) -> BlobStore | None:
    try:
        return open_blob_store(server_blob_url(settings))
    except UsageError:
        return None


def has_stored_file(settings: ServerSettings, sha256: str) -> bool:
    """Whether blob storage holds a run file's content (uploaded by a remote run)."""
    blobs = _settings_blobs(settings)
    return blobs is not None and len(sha256) == 64 and not blobs.missing([sha256])


def stored_file(settings: ServerSettings, sha256: str) -> Path | Iterator[bytes] | None:
    """A run file's content from blob storage: a local path, a chunk stream, or None when absent."""
    blobs = _settings_blobs(settings)
    if blobs is None or len(sha256) != 64:
        return None
    local = blobs.local_path(sha256)
    if local is not None:
        return local if local.is_file() else None
    try:
        return blobs.open(sha256)
    except FileNotFoundError:
        return None
