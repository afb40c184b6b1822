"""Artifact uploads in flight over the W&B protocol (revision 0007), shared by every server replica.

A W&B client logs an artifact in several requests (`CreateArtifact`, its files, its manifest,
`CommitArtifact`) that a load balancer may send to different replicas, and a server may restart in
between: what arrived so far lives here, not in one process. Each file stored is its own row, so
replicas receiving a client's files at once never overwrite each other. A committed upload keeps
its row (files and entries dropped) so its client id still names the version; every row is
dropped a day after it was created.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from branchline.errors import UsageError
from branchline.store.artifacts import EntryRow
from branchline.store.schema import wandb_artifact_upload_files as files_t
from branchline.store.schema import wandb_artifact_uploads as uploads_t

__all__ = ["UPLOAD_TTL", "PendingUpload", "PendingUploadStoreMixin"]

#: How long an upload in flight is kept (committed or not) before it is dropped.
UPLOAD_TTL = 24 * 3600.0


@dataclass
class PendingUpload:
    """An artifact a client is uploading: what `CreateArtifact` named, and what arrived since."""

    id: str
    entity: str
    project: str
    name: str
    type: str
    digest: str
    description: str | None
    metadata: dict[str, Any]
    aliases: list[str]
    incarnation_id: str | None
    client_id: str | None
    created_at: float
    #: path → (sha256, size) of each file stored so far.
    files: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: The manifest's entries, once the manifest was uploaded.
    entries: list[EntryRow] | None = None


def _entries_text(entries: Sequence[EntryRow]) -> str:
    return json.dumps([[e.path, e.digest, e.size, e.ref, e.extra] for e in entries], allow_nan=True)


def _entries_of(text: str | None) -> list[EntryRow] | None:
    if text is None:
        return None
    return [EntryRow(str(p), str(d), s, r, x) for p, d, s, r, x in json.loads(text)]


def create(conn: Connection, upload: PendingUpload) -> None:
    values = {
        "id": upload.id,
        "client_id": upload.client_id,
        "entity": upload.entity,
        "project": upload.project,
        "name": upload.name,
        "type": upload.type,
        "digest": upload.digest,
        "description": upload.description,
        "artifact_metadata": json.dumps(upload.metadata, allow_nan=True),
        "aliases": json.dumps(list(upload.aliases)),
        "incarnation_id": upload.incarnation_id,
        "entries": None if upload.entries is None else _entries_text(upload.entries),
        "created_at": upload.created_at,
        "committed_at": None,
    }
    try:
        with conn.begin_nested():
            conn.execute(insert(uploads_t).values(**values))
    except IntegrityError:
        raise UsageError(f"An artifact upload {upload.id!r} exists already: start it under a new id.") from None
    for path, (sha256, size) in upload.files.items():
        conn.execute(insert(files_t).values(upload_id=upload.id, path=path, sha256=sha256, size=size))


def get(conn: Connection, upload_id: str) -> PendingUpload | None:
    c = uploads_t.c
    row = conn.execute(select(uploads_t).where(c.id == upload_id, c.committed_at.is_(None))).first()
    if row is None:
        return None
    f = files_t.c
    stored = conn.execute(select(f.path, f.sha256, f.size).where(f.upload_id == upload_id)).all()
    return PendingUpload(
        id=row.id,
        entity=row.entity,
        project=row.project,
        name=row.name,
        type=row.type,
        digest=row.digest,
        description=row.description,
        metadata=json.loads(row.artifact_metadata),
        aliases=[str(a) for a in json.loads(row.aliases)],
        incarnation_id=row.incarnation_id,
        client_id=row.client_id,
        created_at=float(row.created_at),
        files={str(p): (str(s), int(n)) for p, s, n in stored},
        entries=_entries_of(row.entries),
    )


def by_client_id(conn: Connection, client_id: str) -> str | None:
    c = uploads_t.c
    stmt = select(c.id).where(c.client_id == client_id).order_by(c.created_at.desc()).limit(1)
    found = conn.execute(stmt).scalar()
    return None if found is None else str(found)


def add_file(conn: Connection, upload_id: str, path: str, sha256: str, size: int) -> bool:
    c = uploads_t.c
    if conn.execute(select(c.id).where(c.id == upload_id, c.committed_at.is_(None))).first() is None:
        return False
    f = files_t.c
    where = (f.upload_id == upload_id) & (f.path == path)
    # The same file sent twice (a retry) keeps its last content, as a dict would.
    if conn.execute(update(files_t).where(where).values(sha256=sha256, size=size)).rowcount:
        return True
    try:
        with conn.begin_nested():
            conn.execute(insert(files_t).values(upload_id=upload_id, path=path, sha256=sha256, size=size))
    except IntegrityError:
        # A retry on another replica inserted it between our update and insert.
        conn.execute(update(files_t).where(where).values(sha256=sha256, size=size))
    return True


def set_entries(conn: Connection, upload_id: str, entries: Sequence[EntryRow]) -> bool:
    c = uploads_t.c
    done = conn.execute(
        update(uploads_t).where(c.id == upload_id, c.committed_at.is_(None)).values(entries=_entries_text(entries))
    )
    return bool(done.rowcount)


def finish(conn: Connection, upload_id: str, now: float) -> bool:
    c = uploads_t.c
    conn.execute(delete(files_t).where(files_t.c.upload_id == upload_id))
    done = conn.execute(
        update(uploads_t).where(c.id == upload_id, c.committed_at.is_(None)).values(committed_at=now, entries=None)
    )
    return bool(done.rowcount)


def drop_stale(conn: Connection, before: float) -> int:
    stale = select(uploads_t.c.id).where(uploads_t.c.created_at < before)
    conn.execute(delete(files_t).where(files_t.c.upload_id.in_(stale)))
    return int(conn.execute(delete(uploads_t).where(uploads_t.c.created_at < before)).rowcount or 0)


class PendingUploadStoreMixin:
    """`Store` methods for uploads in flight; each is one short transaction around the functions above."""

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def create_pending_upload(self, upload: PendingUpload) -> None:
        """Record a new upload in flight (its id must be new)."""
        with self._write() as conn:
            create(conn, upload)

    def get_pending_upload(self, upload_id: str) -> PendingUpload | None:
        """The upload with its files and entries; None when unknown, committed or dropped."""
        with self._read() as conn:
            return get(conn, upload_id)

    def pending_upload_by_client_id(self, client_id: str) -> str | None:
        """The id of the (newest) upload the client named `client_id`, committed or not."""
        with self._read() as conn:
            return by_client_id(conn, client_id)

    def add_pending_upload_file(self, upload_id: str, path: str, sha256: str, size: int) -> bool:
        """Note a file stored for the upload; False when the upload is no longer in flight."""
        with self._write() as conn:
            return add_file(conn, upload_id, path, sha256, size)

    def set_pending_upload_entries(self, upload_id: str, entries: Sequence[EntryRow]) -> bool:
        """Keep the manifest's entries; False when the upload is no longer in flight."""
        with self._write() as conn:
            return set_entries(conn, upload_id, entries)

    def finish_pending_upload(self, upload_id: str) -> bool:
        """The upload was committed: forget its files and entries (its client id still maps)."""
        with self._write() as conn:
            return finish(conn, upload_id, time.time())

    def drop_stale_uploads(self, older_than: float = UPLOAD_TTL) -> int:
        """Drop the uploads created more than `older_than` seconds ago; how many were dropped."""
        with self._write() as conn:
            return drop_stale(conn, time.time() - older_than)
