"""`PUT`/`GET /wandb/artifacts/{token}`: artifact files and manifests through signed URLs.

The client sends no credentials to the URLs `CreateArtifactFiles`, `CreateArtifactManifest` and
the download queries hand it, so each URL carries its capability (signing.py): `APUT` for one file
(its path and MD5) or the manifest of one upload in flight, `AGET` for one entry or the manifest of
one committed version. An uploaded file is checked against the MD5 it was announced with and
stored as a blob by sha256; the manifest is turned into the version's entries (artifacts.py).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from branchline.server.blob_storage import blob_store
from branchline.server.wandb.artifacts import MANIFEST_PATH, manifest_entries, manifest_json, uploads_of
from branchline.server.wandb.routes import errors
from branchline.server.wandb.signing import signer_for
from branchline.store.interface import StoreInterface

__all__ = ["router"]

router = APIRouter(tags=["wandb"], include_in_schema=False)
Token = Annotated[str, PathParam(min_length=10, max_length=4096)]
#: A manifest is read into memory to be parsed: refuse one past this size.
_MAX_MANIFEST = 512 << 20


@router.put("/wandb/artifacts/{token}")
async def upload(token: Token, request: Request) -> Response:
    grant = signer_for(request.app).verify(token, "APUT")
    if grant is None:
        return errors("The upload URL is invalid or has expired.", 403)
    registry = uploads_of(request.app)
    store: StoreInterface = request.app.state.store
    found = await run_in_threadpool(store.get_pending_upload, grant.incarnation_id)
    if found is None:
        return errors("This artifact upload is no longer in flight: log the artifact again.", 404)
    if grant.path == MANIFEST_PATH:
        body = await request.body()
        if len(body) > _MAX_MANIFEST:
            return errors("The manifest is too large.", 413)
        try:
            entries = manifest_entries(registry, found, json.loads(body))
        except ValueError as exc:
            return errors(f"The artifact manifest was refused: {exc}.", 400)
        if not await run_in_threadpool(store.set_pending_upload_entries, found.id, entries):
            return errors("This artifact upload is no longer in flight: log the artifact again.", 404)
        return JSONResponse({"entries": len(entries)})
    path, _, md5 = grant.path.rpartition("\n")
    blobs = blob_store(request.app)
    tmp = Path(tempfile.gettempdir()) / f"wandb.artifact.{os.getpid()}.{secrets.token_hex(6)}"
    sha, md5_hash, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    try:
        with open(tmp, "wb") as out:
            async for chunk in request.stream():
                sha.update(chunk)
                md5_hash.update(chunk)
                size += len(chunk)
                await run_in_threadpool(out.write, chunk)
        got = base64.b64encode(md5_hash.digest()).decode("ascii")
        if md5 and got != md5:
            return errors(f"The content of {path!r} does not match its MD5 ({got} != {md5}); upload it again.", 400)
        digest = sha.hexdigest()
        if blobs.missing([digest]):
            await run_in_threadpool(blobs.put_file, digest, str(tmp))
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    registry.remember(got, digest, size)
    if not await run_in_threadpool(store.add_pending_upload_file, found.id, path, digest, size):
        return errors("This artifact upload is no longer in flight: log the artifact again.", 404)
    return JSONResponse({"sha256": digest, "size": size})


@router.get("/wandb/artifacts/{token}")
async def download(token: Token, request: Request) -> Response:
    grant = signer_for(request.app).verify(token, "AGET")
    if grant is None:
        return errors("The download URL is invalid or has expired.", 403)
    store: StoreInterface = request.app.state.store
    row = await run_in_threadpool(store.get_artifact, grant.incarnation_id)
    if row is None:
        return errors("The artifact version no longer exists.", 404)
    blobs = blob_store(request.app)
    if grant.path == MANIFEST_PATH:
        manifest = await run_in_threadpool(manifest_json, store, blobs, row)
        return JSONResponse(manifest)
    entries = await run_in_threadpool(store.artifact_entries, row.id)
    entry = next((e for e in entries if e.path == grant.path and e.ref is None), None)
    missing: set[str] = set() if entry is None else await run_in_threadpool(blobs.missing, [entry.digest])
    if entry is None or missing:
        return errors(f"No stored file {grant.path!r} in this artifact.", 404)
    chunks = await run_in_threadpool(blobs.open, entry.digest)
    return StreamingResponse(iterate_in_threadpool(chunks), media_type="application/octet-stream")
