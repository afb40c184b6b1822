"""`PUT`/`GET /wandb/files/{token}`: run files through signed URLs, with no credentials.

`CreateRunFiles` hands the client one signed upload URL per file; the body is hashed as it
streams in, stored as a blob named by its sha256 (the blobs run files and artifacts share), and
listed as the run's file under exactly the client's path — `wandb-metadata.json`, `output.log`,
`media/images/….png`, a `run.save`d file — so the web app's Files tab shows it. A signed download
URL serves the same content back.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import tempfile
from pathlib import Path, PurePosixPath
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from branchline.artifacts.blobstores import LocalBlobStore
from branchline.server.blob_storage import blob_store
from branchline.server.wandb.routes import errors
from branchline.server.wandb.signing import Grant, signer_for
from branchline.store.interface import StoreInterface

__all__ = ["router"]

router = APIRouter(tags=["wandb"], include_in_schema=False)
Token = Annotated[str, PathParam(min_length=10, max_length=4096)]
_CHUNK = 1 << 20


def _safe(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return bool(parts) and not PurePosixPath(path).is_absolute() and ".." not in parts and "\x00" not in path


def _grant(request: Request, token: str, method: str) -> Grant | None:
    grant = signer_for(request.app).verify(token, method)
    return grant if grant is not None and _safe(grant.path) else None


def _store_blob(request: Request, tmp: Path, digest: str) -> None:
    blobs = blob_store(request.app)
    if not blobs.missing([digest]):
        return
    if isinstance(blobs, LocalBlobStore):
        final = blobs.path(digest)
        os.chmod(tmp, 0o444)
        final.parent.mkdir(exist_ok=True)
        os.replace(tmp, final)
    else:
        blobs.put_file(digest, str(tmp))


@router.put("/wandb/files/{token}")
async def upload(token: Token, request: Request) -> Response:
    grant = _grant(request, token, "PUT")
    if grant is None:
        return errors("The upload URL is invalid or has expired.", 403)
    blobs = blob_store(request.app)
    tmp_dir = blobs._tmp if isinstance(blobs, LocalBlobStore) else Path(tempfile.gettempdir())
    tmp = tmp_dir / f"wandb.upload.{os.getpid()}.{secrets.token_hex(6)}"
    digest = hashlib.sha256()
    size = 0
    try:
        with open(tmp, "wb") as out:
            async for chunk in request.stream():
                digest.update(chunk)
                size += len(chunk)
                await run_in_threadpool(out.write, chunk)
        sha = digest.hexdigest()
        await run_in_threadpool(_store_blob, request, tmp, sha)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    store: StoreInterface = request.app.state.store
    await run_in_threadpool(store.add_run_file, grant.incarnation_id, grant.path, size, sha)
    return JSONResponse({"sha256": sha, "size": size})


@router.get("/wandb/files/{token}")
async def download(token: Token, request: Request) -> Response:
    grant = _grant(request, token, "GET")
    if grant is None:
        return errors("The download URL is invalid or has expired.", 403)
    store: StoreInterface = request.app.state.store
    rows = await run_in_threadpool(store.files, grant.incarnation_id)
    row = next((r for r in rows if r["path"] == grant.path), None)
    blobs = blob_store(request.app)
    if row is None or str(row["sha256"]) in await run_in_threadpool(blobs.missing, [str(row["sha256"])]):
        return errors(f"No stored file {grant.path!r}.", 404)
    chunks = await run_in_threadpool(blobs.open, str(row["sha256"]))
    return StreamingResponse(iterate_in_threadpool(chunks), media_type="application/octet-stream")
