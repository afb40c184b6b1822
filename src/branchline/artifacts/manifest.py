"""Manifest entries and the manifest digest.

The digest is sha256 over `branchline-artifact-manifest-v1\\n` then `"<path>:<entry digest>\\n"` for
entries sorted by path (wandb's layout, with sha256 for MD5). Metadata and description are not part
of it, so logging the same files again finds the same version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from branchline.artifacts.hashing import FileStat

__all__ = ["MANIFEST_HEADER", "ArtifactManifest", "ArtifactManifestEntry", "EntryFetcher"]

MANIFEST_HEADER = "branchline-artifact-manifest-v1\n"


class EntryFetcher(Protocol):
    """Downloads entries of one logged version (its backend and default directory; transfer.VersionFetcher)."""

    def fetch(self, entries: list[ArtifactManifestEntry], root: str | None) -> list[str]: ...


@dataclass
class ArtifactManifestEntry:
    """One file of an artifact: stored as a blob (`ref` None) or a reference to `ref`."""

    path: str
    digest: str
    size: int | None
    ref: str | None = None
    extra: dict[str, Any] | None = None
    # Drafts only: where the content is read from at upload, and its stat when it was hashed.
    local_path: str | None = field(default=None, repr=False, compare=False)
    local_stat: FileStat | None = field(default=None, repr=False, compare=False)
    # Entries of a logged version: where `download()` reads them from.
    fetcher: EntryFetcher | None = field(default=None, repr=False, compare=False)

    @property
    def is_reference(self) -> bool:
        return self.ref is not None

    def download(self, root: str | None = None) -> str:
        """Download just this entry (verified) under `root`; returns the file's path."""
        if self.fetcher is None:
            raise ValueError(f"Entry {self.path!r} does not belong to a logged artifact.")
        return self.fetcher.fetch([self], root)[0]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "digest": self.digest, "size": self.size}
        if self.ref is not None:
            out["ref"] = self.ref
        if self.extra:
            out["extra"] = self.extra
        return out


class ArtifactManifest:
    """The entries of an artifact, by path."""

    def __init__(self, entries: dict[str, ArtifactManifestEntry] | None = None) -> None:
        self.entries: dict[str, ArtifactManifestEntry] = entries if entries is not None else {}

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[ArtifactManifestEntry]:
        return iter(sorted(self.entries.values(), key=lambda e: e.path))

    def digest(self) -> str:
        h = hashlib.sha256(MANIFEST_HEADER.encode())
        for path in sorted(self.entries):
            h.update(f"{path}:{self.entries[path].digest}\n".encode())
        return h.hexdigest()

    @property
    def size(self) -> int:
        return sum(e.size or 0 for e in self.entries.values())

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "contents": [e.to_dict() for e in self]}
