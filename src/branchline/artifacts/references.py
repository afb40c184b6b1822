"""Reference entries: files that stay where they are (`file://…`, `s3://…`) and are only described.

A `file://` reference records the sha256 of the content, so a download or `verify()` notices when
the file changed; an `s3://` reference records the object's ETag and size, and a download refuses
an object whose ETag no longer matches.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from branchline.artifacts.errors import ArtifactIntegrityError
from branchline.artifacts.hashing import CHUNK, digest_files
from branchline.artifacts.manifest import ArtifactManifestEntry
from branchline.errors import UsageError

__all__ = ["check_reference", "expected_sha256", "file_path_of", "open_reference", "reference_entries"]

_DEFAULT_MAX_OBJECTS = 10_000_000


def file_path_of(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.netloc not in ("", "localhost"):
        raise UsageError(f"Unsupported file reference {uri!r}: only local paths (file:///path) are supported.")
    return unquote(parsed.path)


def _join(prefix: str | None, rel: str) -> str:
    return f"{prefix.rstrip('/')}/{rel}" if prefix else rel


def _strip_etag(etag: str | None) -> str:
    return (etag or "").strip('"')


def reference_entries(
    uri: str, name: str | None = None, *, checksum: bool = True, max_objects: int | None = None
) -> list[ArtifactManifestEntry]:
    """The entries a reference to `uri` adds: one per file or object under it."""
    limit = max_objects or _DEFAULT_MAX_OBJECTS
    scheme = urlparse(uri).scheme
    if scheme == "file":
        return _file_entries(uri, name, checksum, limit)
    if scheme == "s3":
        return _s3_entries(uri, name, checksum, limit)
    raise UsageError(f"Unsupported reference {uri!r}: use file:///path or s3://bucket/key.")


def _unchecked(path: str, ref: str) -> ArtifactManifestEntry:
    # Without a checksum the entry is identified by its URI alone.
    return ArtifactManifestEntry(
        path=path, digest=hashlib.sha256(ref.encode()).hexdigest(), size=None, ref=ref, extra={"checksum": False}
    )


def _file_entries(uri: str, name: str | None, checksum: bool, limit: int) -> list[ArtifactManifestEntry]:
    root = Path(file_path_of(uri))
    if root.is_file():
        files = [(name or root.name, root)]
    elif root.is_dir():
        files = sorted((_join(name, p.relative_to(root).as_posix()), p) for p in root.rglob("*") if p.is_file())
    else:
        raise FileNotFoundError(f"Reference {uri} names nothing: {root} does not exist.")
    if len(files) > limit:
        raise UsageError(f"Reference {uri} holds {len(files)} files, over max_objects={limit}.")
    if not checksum:
        return [_unchecked(path, p.resolve().as_uri()) for path, p in files]
    digests = digest_files([str(p) for _, p in files])
    return [
        ArtifactManifestEntry(path=path, digest=digest, size=st[2], ref=p.resolve().as_uri())
        for (path, p), (digest, st) in zip(files, digests, strict=True)
    ]


def _s3_entries(uri: str, name: str | None, checksum: bool, limit: int) -> list[ArtifactManifestEntry]:
    from branchline.artifacts.blobstores.s3 import load_obstore, s3_store, split_s3_url

    obs = load_obstore()
    bucket, key = split_s3_url(uri)
    store = s3_store(bucket)
    if key and not key.endswith("/"):
        try:
            meta = obs.head(store, key)
        except FileNotFoundError:
            pass
        else:
            path = name or key.rsplit("/", 1)[-1]
            if not checksum:
                return [_unchecked(path, uri)]
            return [_s3_entry(path, bucket, meta)]
    prefix = key.rstrip("/") + "/" if key else None
    entries: list[ArtifactManifestEntry] = []
    for batch in obs.list(store, prefix=prefix):
        for meta in batch:
            rel = str(meta["path"])[len(prefix or "") :]
            if not rel or rel.endswith("/"):
                continue
            if len(entries) >= limit:
                raise UsageError(f"Reference {uri} holds more than max_objects={limit} objects.")
            ref = f"s3://{bucket}/{meta['path']}"
            entries.append(
                _unchecked(_join(name, rel), ref) if not checksum else _s3_entry(_join(name, rel), bucket, meta)
            )
    if not entries:
        raise FileNotFoundError(f"Reference {uri} names no object and no prefix with objects.")
    return sorted(entries, key=lambda e: e.path)


def _s3_entry(path: str, bucket: str, meta: Any) -> ArtifactManifestEntry:
    extra = {"version": meta["version"]} if meta.get("version") else None
    return ArtifactManifestEntry(
        path=path,
        digest=_strip_etag(meta.get("e_tag")),
        size=int(meta["size"]),
        ref=f"s3://{bucket}/{meta['path']}",
        extra=extra,
    )


def _checked(entry: ArtifactManifestEntry) -> bool:
    return (entry.extra or {}).get("checksum") is not False


def expected_sha256(entry: ArtifactManifestEntry) -> str | None:
    """The sha256 the entry's bytes must have, when one is known (blobs and file:// references)."""
    if entry.ref is None:
        return entry.digest
    if entry.ref.startswith("file://") and _checked(entry):
        return entry.digest
    return None


def open_reference(entry: ArtifactManifestEntry) -> Iterator[bytes]:
    """Stream a reference's bytes; an s3:// object whose ETag changed is refused before any byte."""
    assert entry.ref is not None
    if entry.ref.startswith("file://"):
        path = file_path_of(entry.ref)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed by the generator below
        except FileNotFoundError:
            raise ArtifactIntegrityError(
                f"{entry.path}: the referenced file {path} no longer exists.", [entry.path]
            ) from None

        def chunks() -> Iterator[bytes]:
            with fh:
                while chunk := fh.read(CHUNK):
                    yield chunk

        return chunks()
    from branchline.artifacts.blobstores.s3 import load_obstore, s3_store, split_s3_url

    obs = load_obstore()
    bucket, key = split_s3_url(entry.ref)
    try:
        result = obs.get(s3_store(bucket), key)
    except FileNotFoundError:
        raise ArtifactIntegrityError(f"{entry.path}: {entry.ref} no longer exists.", [entry.path]) from None
    if _checked(entry) and _strip_etag(result.meta.get("e_tag")) != entry.digest:
        raise ArtifactIntegrityError(
            f"{entry.path}: {entry.ref} changed since it was logged (ETag {result.meta.get('e_tag')}, "
            f"expected {entry.digest}).",
            [entry.path],
        )
    return (bytes(c) for c in result.stream(min_chunk_size=1 << 20))


def check_reference(entry: ArtifactManifestEntry) -> str | None:
    """A description of what is wrong with a reference, or None if it still matches."""
    assert entry.ref is not None
    if not _checked(entry):
        return None
    if entry.ref.startswith("file://"):
        path = file_path_of(entry.ref)
        if not os.path.isfile(path):
            return f"{entry.path}: the referenced file {path} no longer exists"
        ((digest, _),) = digest_files([path])
        if digest != entry.digest:
            return f"{entry.path}: the referenced file {path} changed (sha256 {digest}, expected {entry.digest})"
        return None
    from branchline.artifacts.blobstores.s3 import load_obstore, s3_store, split_s3_url

    bucket, key = split_s3_url(entry.ref)
    try:
        meta = load_obstore().head(s3_store(bucket), key)
    except FileNotFoundError:
        return f"{entry.path}: {entry.ref} no longer exists"
    if _strip_etag(meta.get("e_tag")) != entry.digest or (entry.size is not None and meta["size"] != entry.size):
        return f"{entry.path}: {entry.ref} changed since it was logged"
    return None
