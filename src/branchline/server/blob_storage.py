"""The server's blob storage: where it lives, opening it once, and receiving verified uploads.

Blobs are content-addressed (sha256) and shared by artifact versions and run files. An upload is
streamed into a temporary file, hashed on the way, and stored only when its digest matches.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from branchline.artifacts.blobstores import BlobStore, LocalBlobStore, open_blob_store, resolve_blob_url
from branchline.errors import UsageError
from branchline.server.errors import ApiError
from branchline.server.settings import ServerSettings

__all__ = [
    "MSGPACK",
    "blob_store",
    "count",
    "has_stored_file",
    "lock",
    "pack",
    "receive",
    "server_blob_url",
    "stored_file",
]

MSGPACK = "application/msgpack"
_CHUNK = 1 << 20

#: Guards opening the blob store and the upload counters.
lock = threading.Lock()


def pack(value: Any, status: int = 200) -> Response:
    """An answer as msgpack, like `/api/v1/store`'s, so metadata keeps NaN and big ints."""
    return Response(content=msgpack.packb(value, use_bin_type=True), media_type=MSGPACK, status_code=status)


def count(request: Request, what: str) -> None:
    """Count an upload stored or skipped (`/blob-stats`)."""
    stats: dict[str, int] = request.app.state.blob_stats
    with lock:
        stats[what] += 1


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
    with lock:
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


def _finish_upload(blobs: BlobStore, digest: str, tmp: Path) -> None:
    if isinstance(blobs, LocalBlobStore):
        final = blobs.path(digest)
        os.chmod(tmp, 0o444)
        final.parent.mkdir(exist_ok=True)
        os.replace(tmp, final)
    else:
        blobs.put_file(digest, str(tmp))


async def receive(request: Request, digest: str, prefix: str = "") -> Response:
    """Stream the body into a temp file, check its sha256, then store it as blob `digest`."""
    blobs = blob_store(request.app)
    if not await run_in_threadpool(blobs.missing, [digest]):
        count(request, prefix + "already_present")
        return pack({"digest": digest, "stored": False})
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
    count(request, prefix + "uploaded")
    return pack({"digest": digest, "stored": True, "size": size}, status=201)


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
