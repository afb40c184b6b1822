"""Artifacts: content-addressed blobs (sha256), manifests, versions, aliases and lineage.

`Artifact` is the user-facing object; `blobs` holds the storage interface (local directory or
S3-compatible); `backend` the interface a server backend implements; `public` the read API.
"""

from branchline.artifacts.artifact import Artifact
from branchline.artifacts.backend import ArtifactBackend, EmbeddedBackend, embedded_backend
from branchline.artifacts.blobstores import BlobStore, LocalBlobStore, open_blob_store, resolve_blob_url
from branchline.artifacts.errors import (
    ArtifactError,
    ArtifactFinalizedError,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactNotLoggedError,
)
from branchline.artifacts.manifest import ArtifactManifest, ArtifactManifestEntry

__all__ = [
    "Artifact",
    "ArtifactBackend",
    "ArtifactError",
    "ArtifactFinalizedError",
    "ArtifactIntegrityError",
    "ArtifactManifest",
    "ArtifactManifestEntry",
    "ArtifactNotFoundError",
    "ArtifactNotLoggedError",
    "BlobStore",
    "EmbeddedBackend",
    "LocalBlobStore",
    "embedded_backend",
    "open_blob_store",
    "resolve_blob_url",
]
