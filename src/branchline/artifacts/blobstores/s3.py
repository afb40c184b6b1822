"""S3-compatible storage through obstore: the blob store, and reading `s3://` references.

The endpoint comes from $BRANCHLINE_S3_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL), so
MinIO, Ceph or a local test server work as well as AWS; credentials and region come from the usual
AWS_* variables, which obstore reads itself.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from branchline.artifacts.blobstores.base import BlobStore, verified_chunks
from branchline.artifacts.hashing import CHUNK, FileStat
from branchline.errors import UsageError

if TYPE_CHECKING:
    from obstore.store import S3Store

__all__ = ["ENDPOINT_ENV", "S3BlobStore", "load_obstore", "s3_store", "split_s3_url"]

ENDPOINT_ENV = "BRANCHLINE_S3_ENDPOINT_URL"
_STREAM_CHUNK = 1 << 20
# Listing everything beats one HEAD per blob once there are this many to ask about.
_LIST_THRESHOLD = 2000


def load_obstore() -> Any:
    try:
        import obstore
    except ImportError:  # pragma: no cover - depends on the environment
        raise UsageError("S3 storage needs the optional dependency obstore: pip install 'branchline[s3]'.") from None
    return obstore


def split_s3_url(url: str) -> tuple[str, str]:
    """(bucket, key or prefix) of `s3://bucket/key`."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise UsageError(f"Invalid S3 URL {url!r}: expected s3://bucket/path.")
    return parsed.netloc, parsed.path.lstrip("/")


_stores: dict[tuple[str, str], S3Store] = {}
_stores_lock = threading.Lock()


def s3_store(bucket: str, prefix: str = "") -> S3Store:
    """An obstore S3Store for `bucket` (optionally under `prefix`), honouring the endpoint settings."""
    endpoint = (
        os.environ.get(ENDPOINT_ENV) or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )
    key = (bucket, f"{prefix}|{endpoint}")
    with _stores_lock:
        found = _stores.get(key)
        if found is not None:
            return found
        load_obstore()  # a clear message when the optional dependency is missing
        from obstore.store import S3Store

        config: dict[str, Any] = {}
        client: dict[str, Any] = {"timeout": "300s"}
        if endpoint:
            config["endpoint"] = endpoint
            client["allow_http"] = endpoint.startswith("http://")
        if not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
            config["region"] = "us-east-1"
        store = S3Store(bucket, prefix=prefix or None, config=config, client_options=client)  # type: ignore[arg-type]
        _stores[key] = store
        return store


class S3BlobStore(BlobStore):
    """Blobs as objects `<prefix>/ab/cdef…` in an S3 bucket."""

    workers = 16

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        bucket, prefix = split_s3_url(self.url)
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._obs = load_obstore()
        self._store = s3_store(bucket, self.prefix)

    @staticmethod
    def _key(digest: str) -> str:
        return f"{digest[:2]}/{digest[2:]}"

    def _has(self, digest: str) -> bool:
        try:
            self._obs.head(self._store, self._key(digest))
        except FileNotFoundError:
            return False
        return True

    def missing(self, digests: Collection[str]) -> set[str]:
        wanted = set(digests)
        if not wanted:
            return set()
        if len(wanted) >= _LIST_THRESHOLD:
            return wanted - {d for d, _ in self.digests()}
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            present = dict(zip(wanted, pool.map(self._has, wanted), strict=True))
        return {d for d, has in present.items() if not has}

    def put_file(self, digest: str, path: str, *, expected_stat: FileStat | None = None) -> None:
        # Always re-hash on the way: hashing is far faster than the network, and an object under
        # the wrong name could not be taken back. A single PUT, or a multipart upload that S3
        # shows only once completed: atomic either way.
        if os.path.getsize(path) <= CHUNK:
            data = b"".join(verified_chunks(path, digest))
            self._obs.put(self._store, self._key(digest), data, use_multipart=False)
        else:
            self._obs.put(self._store, self._key(digest), verified_chunks(path, digest))

    def open(self, digest: str) -> Iterator[bytes]:
        try:
            result = self._obs.get(self._store, self._key(digest))
        except FileNotFoundError:
            raise FileNotFoundError(f"blob {digest} is missing from {self.url}") from None
        return (bytes(chunk) for chunk in result.stream(min_chunk_size=_STREAM_CHUNK))

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._obs.delete(self._store, self._key(digest))

    def digests(self) -> Iterator[tuple[str, float]]:
        for batch in self._obs.list(self._store):
            for meta in batch:
                digest = str(meta["path"]).replace("/", "")
                if len(digest) == 64:
                    yield digest, meta["last_modified"].timestamp()
