"""The artifact backend interface, and its embedded implementation (a Store plus a BlobStore).

`Artifact` talks only to an `ArtifactBackend`. Embedded mode uses `EmbeddedBackend`; a server
backend implements the same methods over HTTP (ask which blobs are missing, send those, commit the
manifest), so the SDK code does not change when a server is configured.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from branchline.artifacts.blobstores import BlobStore, open_blob_store, resolve_blob_url
from branchline.artifacts.hashing import FileStat
from branchline.store.artifacts import LOGGED, USED, EntryRow, VersionRow

__all__ = [
    "LOGGED",
    "USED",
    "ArtifactBackend",
    "CommitRequest",
    "EmbeddedBackend",
    "ServesArtifacts",
    "collect_garbage",
    "embedded_backend",
]


@dataclass
class CommitRequest:
    """Everything needed to create (or find) a version, once its blobs are stored."""

    entity: str
    project: str
    name: str
    type: str
    digest: str
    entries: list[EntryRow]
    description: str | None
    metadata: dict[str, Any]
    aliases: list[str]
    incarnation_id: str | None
    role: str  # LOGGED or USED


class ArtifactBackend(Protocol):
    """What an Artifact needs from wherever versions and blobs are kept."""

    #: How many blob transfers to run at once.
    workers: int

    def missing_blobs(self, digests: Collection[str]) -> set[str]: ...
    def upload_blob(self, digest: str, path: str, expected_stat: FileStat | None) -> None: ...
    def open_blob(self, digest: str) -> Iterator[bytes]: ...
    def blob_path(self, digest: str) -> Path | None:
        """A local path to the blob when it is on this machine (a fast path), else None."""
        ...

    def commit(self, request: CommitRequest) -> tuple[VersionRow, bool]: ...
    def resolve(self, entity: str, project: str, name: str, spec: str) -> VersionRow | None: ...
    def get(self, version_id: str) -> VersionRow | None: ...
    def versions(self, entity: str, project: str, name: str) -> list[VersionRow]: ...
    def entries(self, version_id: str) -> list[EntryRow]: ...
    def record_use(self, version_id: str, incarnation_id: str) -> None: ...
    def set_aliases(self, version_id: str, aliases: Sequence[str]) -> None: ...
    def update(self, version_id: str, description: str | None, metadata: dict[str, Any]) -> None: ...
    def delete(self, version_id: str, delete_aliases: bool) -> None: ...
    def run_versions(self, incarnation_id: str, role: str) -> list[VersionRow]: ...
    def users(self, version_id: str, role: str) -> list[str]: ...
    def run(self, incarnation_id: str) -> Any: ...


@runtime_checkable
class ServesArtifacts(Protocol):
    """An `Api` backend that reaches artifacts through its own service (a server's `RemoteBackend`).

    A backend without this method is a store, read directly with blobs beside it (`embedded_backend`).
    """

    def artifact_backend(self, entity: str | None, run_loader: Callable[[str], Any] | None) -> ArtifactBackend: ...


class EmbeddedBackend:
    """Versions in a Store, bytes in a BlobStore, both reached directly from this process."""

    def __init__(self, store: Any, blobs: BlobStore, wrap_run: Callable[[Any], Any] | None = None) -> None:
        self.store = store
        self.blobs = blobs
        self.workers = blobs.workers
        self._wrap_run = wrap_run

    def missing_blobs(self, digests: Collection[str]) -> set[str]:
        return self.blobs.missing(digests)

    def upload_blob(self, digest: str, path: str, expected_stat: FileStat | None) -> None:
        self.blobs.put_file(digest, path, expected_stat=expected_stat)

    def open_blob(self, digest: str) -> Iterator[bytes]:
        return self.blobs.open(digest)

    def blob_path(self, digest: str) -> Path | None:
        return self.blobs.local_path(digest)

    def commit(self, request: CommitRequest) -> tuple[VersionRow, bool]:
        # Blobs are committed before this call: check none vanished meanwhile (a garbage
        # collection racing the upload), so a version never names a missing blob.
        stored = {e.digest for e in request.entries if e.ref is None}
        lost = self.blobs.missing(stored)
        if lost:
            raise FileNotFoundError(f"{len(lost)} blobs vanished from {self.blobs.url} before the commit; log again.")
        result: tuple[VersionRow, bool] = self.store.commit_artifact(
            entity=request.entity,
            project=request.project,
            name=request.name,
            type=request.type,
            digest=request.digest,
            entries=request.entries,
            description=request.description,
            metadata=request.metadata,
            aliases=request.aliases,
            incarnation_id=request.incarnation_id,
            role=request.role,
        )
        return result

    def resolve(self, entity: str, project: str, name: str, spec: str) -> VersionRow | None:
        found: VersionRow | None = self.store.resolve_artifact(entity, project, name, spec)
        return found

    def get(self, version_id: str) -> VersionRow | None:
        found: VersionRow | None = self.store.get_artifact(version_id)
        return found

    def versions(self, entity: str, project: str, name: str) -> list[VersionRow]:
        return list(self.store.artifact_versions(entity, project, name))

    def entries(self, version_id: str) -> list[EntryRow]:
        return list(self.store.artifact_entries(version_id))

    def record_use(self, version_id: str, incarnation_id: str) -> None:
        self.store.use_artifact(version_id, incarnation_id)

    def set_aliases(self, version_id: str, aliases: Sequence[str]) -> None:
        self.store.set_artifact_aliases(version_id, list(aliases))

    def update(self, version_id: str, description: str | None, metadata: dict[str, Any]) -> None:
        self.store.update_artifact(version_id, description=description, metadata=metadata)

    def delete(self, version_id: str, delete_aliases: bool) -> None:
        # Blobs stay until `collect_garbage`: another upload may be about to reuse them.
        self.store.delete_artifact(version_id, delete_aliases=delete_aliases)

    def run_versions(self, incarnation_id: str, role: str) -> list[VersionRow]:
        return list(self.store.run_artifacts(incarnation_id, role))

    def users(self, version_id: str, role: str) -> list[str]:
        return list(self.store.artifact_users(version_id, role))

    def run(self, incarnation_id: str) -> Any:
        view = self.store.get_incarnation(incarnation_id)
        if view is None:
            return None
        return self._wrap_run(view) if self._wrap_run is not None else view


def embedded_backend(
    store: Any, blob_url: str | None = None, wrap_run: Callable[[Any], Any] | None = None
) -> EmbeddedBackend:
    """The backend for `store`, with blobs where `resolve_blob_url` says."""
    return EmbeddedBackend(store, open_blob_store(resolve_blob_url(store.url, blob_url)), wrap_run)


def collect_garbage(store: Any, blobs: BlobStore, *, min_age: float = 3600.0) -> list[str]:
    """Delete blobs no version references and older than `min_age` seconds; returns their digests.

    The age guard protects blobs an upload in flight has just written or found present (the local
    store refreshes their time when asked) but not yet committed.
    """
    cutoff = time.time() - min_age
    old = [digest for digest, mtime in blobs.digests() if mtime <= cutoff]
    keep = store.referenced_blobs(old) if old else set()
    removed = [d for d in old if d not in keep]
    for digest in removed:
        blobs.delete(digest)
    return removed
