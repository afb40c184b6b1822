"""Artifact rows: collections, versions, manifest entries, aliases and lineage.

Every function takes a Connection inside the caller's transaction. A version row is written in the
same transaction as all its entries and aliases, after the caller has stored every blob, so a
reader never sees a half-made version.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Select, and_, delete, func, insert, select, update

from branchline.errors import UsageError
from branchline.store.schema import (
    artifact_aliases,
    artifact_collections,
    artifact_entries,
    artifact_usage,
    artifact_versions,
    projects,
    run_files,
)
from branchline.store.writes import dialect_insert, ensure_project

__all__ = [
    "LOGGED",
    "USED",
    "EntryRow",
    "VersionRow",
    "commit_version",
    "delete_version",
    "get_version",
    "list_collections",
    "list_versions",
    "record_use",
    "referenced_blobs",
    "resolve_version",
    "run_versions",
    "set_aliases",
    "update_version",
    "version_entries",
    "version_users",
]

LOGGED = "logged"
USED = "used"
_LATEST = "latest"
_CHUNK = 500  # bound IN (...) lists: SQLite limits bound parameters per statement


@dataclass(frozen=True)
class EntryRow:
    """One manifest entry as stored."""

    path: str
    digest: str
    size: int | None
    ref: str | None = None
    extra: dict[str, Any] | None = None


@dataclass
class VersionRow:
    """One artifact version with its collection's identity and its aliases."""

    id: str
    entity: str
    project: str
    name: str
    type: str
    version_index: int
    digest: str
    description: str | None
    metadata: dict[str, Any]
    size: int
    file_count: int
    created_by: str | None
    created_at: float
    updated_at: float
    collection_id: int
    aliases: list[str] = field(default_factory=list)

    @property
    def version(self) -> str:
        return f"v{self.version_index}"


def _version_select() -> Select[Any]:
    return select(
        artifact_versions,
        artifact_collections.c.name,
        artifact_collections.c.type,
        projects.c.entity,
        projects.c.name.label("project"),
    ).select_from(
        artifact_versions.join(
            artifact_collections, artifact_collections.c.id == artifact_versions.c.collection_id
        ).join(projects, projects.c.id == artifact_collections.c.project_id)
    )


def _aliases_of(conn: Connection, version_ids: Sequence[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {v: [] for v in version_ids}
    for offset in range(0, len(version_ids), _CHUNK):
        chunk = list(version_ids[offset : offset + _CHUNK])
        for row in conn.execute(
            select(artifact_aliases.c.version_id, artifact_aliases.c.alias)
            .where(artifact_aliases.c.version_id.in_(chunk))
            .order_by(artifact_aliases.c.alias)
        ):
            found[row.version_id].append(row.alias)
    return found


def _to_rows(conn: Connection, rows: Sequence[Any]) -> list[VersionRow]:
    aliases = _aliases_of(conn, [r.id for r in rows])
    return [
        VersionRow(
            id=r.id,
            entity=r.entity,
            project=r.project,
            name=r.name,
            type=r.type,
            version_index=int(r.version_index),
            digest=r.digest,
            description=r.description,
            metadata=dict(r.artifact_metadata or {}),
            size=int(r.size),
            file_count=int(r.file_count),
            created_by=r.created_by,
            created_at=float(r.created_at),
            updated_at=float(r.updated_at),
            collection_id=int(r.collection_id),
            aliases=aliases[r.id],
        )
        for r in rows
    ]


def get_version(conn: Connection, version_id: str) -> VersionRow | None:
    row = conn.execute(_version_select().where(artifact_versions.c.id == version_id)).first()
    return None if row is None else _to_rows(conn, [row])[0]


def _collection(conn: Connection, entity: str, project: str, name: str) -> Any:
    return conn.execute(
        select(artifact_collections)
        .join(projects, projects.c.id == artifact_collections.c.project_id)
        .where(projects.c.entity == entity, projects.c.name == project, artifact_collections.c.name == name)
    ).first()


def _insert_ignore(conn: Connection) -> Any:
    return dialect_insert(conn)


def _point_alias(conn: Connection, collection_id: int, alias: str, version_id: str) -> None:
    stmt = _insert_ignore(conn)(artifact_aliases).values(
        collection_id=collection_id, alias=alias, version_id=version_id
    )
    conn.execute(stmt.on_conflict_do_update(index_elements=["collection_id", "alias"], set_={"version_id": version_id}))


def record_use(conn: Connection, version_id: str, incarnation_id: str, role: str, now: float) -> None:
    """Record that an incarnation logged or used a version (idempotent)."""
    stmt = _insert_ignore(conn)(artifact_usage).values(
        version_id=version_id, incarnation_id=incarnation_id, role=role, at=now
    )
    conn.execute(stmt.on_conflict_do_nothing())


def commit_version(
    conn: Connection,
    *,
    entity: str,
    project: str,
    name: str,
    type: str,
    digest: str,
    entries: Sequence[EntryRow],
    description: str | None,
    metadata: dict[str, Any],
    aliases: Iterable[str],
    incarnation_id: str | None,
    role: str,
    now: float,
    version_id: str | None = None,
) -> tuple[VersionRow, bool]:
    """Create the next version, or reuse the one with the same digest; returns (version, created).

    Aliases (and `latest`, always) move to the returned version. `version_id` names a new version
    (the W&B protocol hands the client an id before the commit); by default one is drawn.
    """
    collection = _locked_collection(conn, entity, project, name, type, description, now)
    existing = conn.execute(
        select(artifact_versions.c.id).where(
            artifact_versions.c.collection_id == collection.id, artifact_versions.c.digest == digest
        )
    ).scalar()
    created = existing is None
    if existing is None:
        creator = incarnation_id if role == LOGGED else None
        version_id = _insert_version(
            conn, collection, digest, entries, description, metadata, creator, now, version_id or secrets.token_hex(16)
        )
    else:
        version_id = str(existing)
    for alias in dict.fromkeys([*aliases, _LATEST]):
        _point_alias(conn, collection.id, alias, version_id)
    if incarnation_id is not None:
        record_use(conn, version_id, incarnation_id, role, now)
    found = get_version(conn, version_id)
    assert found is not None
    return found, created


def _locked_collection(
    conn: Connection, entity: str, project: str, name: str, type: str, description: str | None, now: float
) -> Any:
    """The collection `name` of the project (created if new), locked for choosing a version number."""
    project_id = ensure_project(conn, entity, project, now)
    conn.execute(
        _insert_ignore(conn)(artifact_collections)
        .values(
            project_id=project_id,
            name=name,
            type=type,
            description=description or "",
            next_version=0,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
    )
    # Lock the collection row (PostgreSQL; SQLite already holds the write lock) so two writers
    # never take the same version number.
    collection = conn.execute(
        select(artifact_collections)
        .where(artifact_collections.c.project_id == project_id, artifact_collections.c.name == name)
        .with_for_update()
    ).one()
    if collection.type != type:
        raise UsageError(
            f"Artifact {name!r} in {entity}/{project} has type {collection.type!r}; "
            f"it cannot be logged with type {type!r}."
        )
    return collection


def _insert_version(
    conn: Connection,
    collection: Any,
    digest: str,
    entries: Sequence[EntryRow],
    description: str | None,
    metadata: dict[str, Any],
    created_by: str | None,
    now: float,
    version_id: str,
) -> str:
    """Add the collection's next version with its manifest entries; returns the new version's id."""
    index = int(collection.next_version)
    conn.execute(
        insert(artifact_versions).values(
            id=version_id,
            collection_id=collection.id,
            version_index=index,
            digest=digest,
            description=description,
            artifact_metadata=metadata,
            size=sum(e.size or 0 for e in entries),
            file_count=len(entries),
            created_by=created_by,
            created_at=now,
            updated_at=now,
        )
    )
    rows = [
        {"version_id": version_id, "path": e.path, "digest": e.digest, "size": e.size, "ref": e.ref, "extra": e.extra}
        for e in entries
    ]
    for offset in range(0, len(rows), _CHUNK):
        conn.execute(insert(artifact_entries), rows[offset : offset + _CHUNK])
    conn.execute(
        update(artifact_collections)
        .where(artifact_collections.c.id == collection.id)
        .values(next_version=index + 1, updated_at=now)
    )
    return version_id


def _parse_index(spec: str) -> int | None:
    if len(spec) > 1 and spec[0] == "v" and spec[1:].isdigit():
        return int(spec[1:])
    return None


def resolve_version(conn: Connection, entity: str, project: str, name: str, spec: str) -> VersionRow | None:
    """The version `spec` ("vN" or an alias) names in a collection, or None."""
    collection = _collection(conn, entity, project, name)
    if collection is None:
        return None
    index = _parse_index(spec)
    if index is not None:
        version_id = conn.execute(
            select(artifact_versions.c.id).where(
                artifact_versions.c.collection_id == collection.id, artifact_versions.c.version_index == index
            )
        ).scalar()
    else:
        version_id = conn.execute(
            select(artifact_aliases.c.version_id).where(
                artifact_aliases.c.collection_id == collection.id, artifact_aliases.c.alias == spec
            )
        ).scalar()
    return None if version_id is None else get_version(conn, str(version_id))


def list_versions(conn: Connection, entity: str, project: str, name: str) -> list[VersionRow]:
    """Every version of a collection, newest first."""
    rows = conn.execute(
        _version_select()
        .where(projects.c.entity == entity, projects.c.name == project, artifact_collections.c.name == name)
        .order_by(artifact_versions.c.version_index.desc())
    ).all()
    return _to_rows(conn, rows)


def list_collections(conn: Connection, entity: str, project: str, type: str | None = None) -> list[dict[str, Any]]:
    """The artifact names of a project with their type and version count."""
    counts = (
        select(artifact_versions.c.collection_id, func.count().label("versions"))
        .group_by(artifact_versions.c.collection_id)
        .subquery()
    )
    stmt = (
        select(artifact_collections, func.coalesce(counts.c.versions, 0).label("versions"))
        .join(projects, projects.c.id == artifact_collections.c.project_id)
        .outerjoin(counts, counts.c.collection_id == artifact_collections.c.id)
        .where(projects.c.entity == entity, projects.c.name == project)
        .order_by(artifact_collections.c.name)
    )
    if type is not None:
        stmt = stmt.where(artifact_collections.c.type == type)
    return [
        {
            "name": r.name,
            "type": r.type,
            "description": r.description,
            "versions": int(r.versions),
            "created_at": r.created_at,
            "updated_at": r.updated_at,
        }
        for r in conn.execute(stmt)
    ]


def version_entries(conn: Connection, version_id: str) -> list[EntryRow]:
    return [
        EntryRow(path=r.path, digest=r.digest, size=r.size, ref=r.ref, extra=r.extra)
        for r in conn.execute(
            select(artifact_entries)
            .where(artifact_entries.c.version_id == version_id)
            .order_by(artifact_entries.c.path)
        )
    ]


def _ensure_latest(conn: Connection, collection_id: int) -> None:
    """Point `latest` at the newest version if nothing carries it (after a delete or an edit)."""
    has = conn.execute(
        select(artifact_aliases.c.version_id).where(
            artifact_aliases.c.collection_id == collection_id, artifact_aliases.c.alias == _LATEST
        )
    ).first()
    if has is not None:
        return
    newest = conn.execute(
        select(artifact_versions.c.id)
        .where(artifact_versions.c.collection_id == collection_id)
        .order_by(artifact_versions.c.version_index.desc())
        .limit(1)
    ).scalar()
    if newest is not None:
        _point_alias(conn, collection_id, _LATEST, str(newest))


def set_aliases(conn: Connection, version_id: str, aliases: Iterable[str]) -> None:
    """Make `aliases` exactly the version's aliases, moving any held by sibling versions."""
    version = get_version(conn, version_id)
    if version is None:
        raise UsageError(f"Artifact version {version_id} no longer exists.")
    wanted = list(dict.fromkeys(aliases))
    conn.execute(
        delete(artifact_aliases).where(
            artifact_aliases.c.version_id == version_id, artifact_aliases.c.alias.not_in(wanted)
        )
    )
    for alias in wanted:
        _point_alias(conn, version.collection_id, alias, version_id)
    _ensure_latest(conn, version.collection_id)


def update_version(
    conn: Connection, version_id: str, *, description: str | None, metadata: dict[str, Any], now: float
) -> None:
    conn.execute(
        update(artifact_versions)
        .where(artifact_versions.c.id == version_id)
        .values(description=description, artifact_metadata=metadata, updated_at=now)
    )


def delete_version(conn: Connection, version_id: str, *, delete_aliases: bool) -> list[str]:
    """Delete a version; refused while aliases point at it unless `delete_aliases`.

    Returns the blob digests it referenced, for the caller to collect if nothing else does.
    """
    version = get_version(conn, version_id)
    if version is None:
        return []
    if version.aliases and not delete_aliases:
        raise UsageError(
            f"Artifact {version.entity}/{version.project}/{version.name}:{version.version} has aliases "
            f"{', '.join(version.aliases)}; remove them first or pass delete_aliases=True."
        )
    blobs = [
        str(d)
        for d in conn.execute(
            select(artifact_entries.c.digest).where(
                artifact_entries.c.version_id == version_id, artifact_entries.c.ref.is_(None)
            )
        ).scalars()
    ]
    for table in (artifact_aliases, artifact_usage, artifact_entries):
        conn.execute(delete(table).where(table.c.version_id == version_id))
    conn.execute(delete(artifact_versions).where(artifact_versions.c.id == version_id))
    _ensure_latest(conn, version.collection_id)
    return blobs


def run_versions(conn: Connection, incarnation_id: str, role: str) -> list[VersionRow]:
    """Versions an incarnation logged or used, in the order it did so."""
    rows = conn.execute(
        _version_select()
        .join(artifact_usage, artifact_usage.c.version_id == artifact_versions.c.id)
        .where(artifact_usage.c.incarnation_id == incarnation_id, artifact_usage.c.role == role)
        .order_by(artifact_usage.c.at, artifact_versions.c.version_index)
    ).all()
    return _to_rows(conn, rows)


def version_users(conn: Connection, version_id: str, role: str) -> list[str]:
    """Incarnation ids that logged or used a version, oldest first."""
    return [
        str(r)
        for r in conn.execute(
            select(artifact_usage.c.incarnation_id)
            .where(artifact_usage.c.version_id == version_id, artifact_usage.c.role == role)
            .order_by(artifact_usage.c.at)
        ).scalars()
    ]


def referenced_blobs(conn: Connection, digests: Sequence[str]) -> set[str]:
    """Which of `digests` some manifest entry or run file still stores as a blob (blobs are shared:
    a run file uploaded to a server is kept under its sha256 too)."""
    found: set[str] = set()
    for offset in range(0, len(digests), _CHUNK):
        chunk = list(digests[offset : offset + _CHUNK])
        found.update(
            str(d)
            for d in conn.execute(
                select(artifact_entries.c.digest)
                .where(and_(artifact_entries.c.digest.in_(chunk), artifact_entries.c.ref.is_(None)))
                .distinct()
            ).scalars()
        )
        found.update(
            str(d)
            for d in conn.execute(select(run_files.c.sha256).where(run_files.c.sha256.in_(chunk)).distinct()).scalars()
        )
    return found
