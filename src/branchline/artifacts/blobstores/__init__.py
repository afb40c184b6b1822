"""Content-addressed blob storage, chosen by URL scheme: `file://` (or a plain path) and `s3://`.

`open_blob_store(url)` looks the scheme up in a small registry; `register_scheme` adds one. A store
whose module needs an optional dependency (S3: obstore) is imported only when its scheme is used.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

from branchline.artifacts.blobstores.base import BlobStore, copy_fd, copy_verified, verified_chunks
from branchline.artifacts.blobstores.local import FSYNC_ENV, LocalBlobStore
from branchline.errors import UsageError

__all__ = [
    "FSYNC_ENV",
    "STORAGE_ENV",
    "BlobStore",
    "LocalBlobStore",
    "Opener",
    "copy_fd",
    "copy_verified",
    "open_blob_store",
    "register_scheme",
    "resolve_blob_url",
    "verified_chunks",
]

#: Overrides where blobs go: `file:///path` or `s3://bucket/prefix`.
STORAGE_ENV = "BRANCHLINE_ARTIFACT_STORAGE"

#: Opens the store at a URL of its scheme.
Opener = Callable[[str], BlobStore]


def _open_file(url: str) -> BlobStore:
    return LocalBlobStore(unquote(urlparse(url).path))


def _open_s3(url: str) -> BlobStore:
    from branchline.artifacts.blobstores.s3 import S3BlobStore

    return S3BlobStore(url)


_schemes: dict[str, Opener] = {"file": _open_file, "s3": _open_s3}
_opened: dict[str, BlobStore] = {}


def register_scheme(scheme: str, opener: Opener) -> None:
    """Serve `scheme://…` blob URLs with `opener` (replacing any opener the scheme had)."""
    _schemes[scheme] = opener


def open_blob_store(url: str) -> BlobStore:
    """The blob store at `url`: `file:///path`, a plain path, or `s3://bucket/prefix`."""
    found = _opened.get(url)
    if found is not None:
        return found
    scheme = urlparse(url).scheme
    opener = _schemes.get(scheme)
    if opener is not None:
        store = opener(url)
    elif scheme == "" and url:
        store = LocalBlobStore(url)
    else:
        raise UsageError(f"Unsupported artifact storage {url!r}: use file:///path or s3://bucket/prefix.")
    _opened[url] = store
    return store


def resolve_blob_url(store_url: str, explicit: str | None = None) -> str:
    """Where blobs go: `explicit`, else $BRANCHLINE_ARTIFACT_STORAGE, else `blobs/` beside a SQLite store."""
    chosen = explicit or os.environ.get(STORAGE_ENV)
    if chosen:
        return chosen
    if store_url.startswith("sqlite:///") and not store_url.endswith(":memory:"):
        database = Path(store_url[len("sqlite:///") :].split("?", 1)[0])
        return (database.resolve().parent / "blobs").as_uri()
    raise UsageError(
        f"The store {store_url} keeps no files itself: set {STORAGE_ENV} to file:///path or "
        "s3://bucket/prefix to say where artifact blobs go."
    )
