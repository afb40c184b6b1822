"""Catalog reads for the web app and the server: project activity, state counts, column names,
who owns incarnations, a run's artifacts, and whether a project may read a blob."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, and_, case, exists, false, func, or_, select

from branchline.store import schema as s

__all__ = [
    "blob_in_project",
    "flat_keys",
    "incarnation_owners",
    "project_activity",
    "project_columns",
    "run_artifact_summaries",
    "state_counts",
]

_MAX_DEPTH = 4
#: Incarnation ids per `IN (...)` query: well under every driver's parameter limit.
_BATCH = 500


def project_activity(
    conn: Connection, entity: str | None = None, *, private_runs_of: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """Projects with run counts, running runs and last activity (latest edit or heartbeat).

    With `private_runs_of` (the caller's entities), a private run counts only in the projects of
    those entities: to anyone else it does not exist. None counts every run.
    """
    p, r, i = s.projects.c, s.runs.c, s.incarnations.c
    joined = r.project_id == p.id
    if private_runs_of is not None:
        joined = and_(joined, or_(r.private == false(), p.entity.in_(list(private_runs_of))))
    running = func.sum(case((i.state == "running", 1), else_=0))
    stmt = (
        select(
            p.entity,
            p.name,
            p.created_at,
            func.count(r.pk).label("run_count"),
            running.label("running_count"),
            func.max(r.updated_at).label("updated"),
            func.max(i.heartbeat_at).label("heartbeat"),
        )
        .select_from(s.projects)
        .outerjoin(s.runs, joined)
        .outerjoin(s.incarnations, i.id == r.current_incarnation)
        .group_by(p.id, p.entity, p.name, p.created_at)
        .order_by(p.entity, p.name)
    )
    if entity is not None:
        stmt = stmt.where(p.entity == entity)
    out = []
    for row in conn.execute(stmt):
        times = [t for t in (row.updated, row.heartbeat) if t is not None]
        out.append(
            {
                "entity": row.entity,
                "name": row.name,
                "created_at": float(row.created_at),
                "run_count": int(row.run_count or 0),
                "running_count": int(row.running_count or 0),
                "last_activity": max(times) if times else None,
            }
        )
    return out


def _current_of_project(entity: str, project: str, include_private: bool = True) -> Any:
    """The current incarnations of `entity/project`'s runs, as a select to add columns to."""
    stmt = (
        select()
        .select_from(s.runs)
        .join(s.projects, s.projects.c.id == s.runs.c.project_id)
        .join(s.incarnations, s.incarnations.c.id == s.runs.c.current_incarnation)
        .where(s.projects.c.entity == entity, s.projects.c.name == project)
    )
    return stmt if include_private else stmt.where(s.runs.c.private == false())


def state_counts(conn: Connection, entity: str, project: str, *, include_private: bool = True) -> dict[str, int]:
    """How many of the project's runs are in each state (private runs left out unless `include_private`)."""
    stmt = (
        _current_of_project(entity, project, include_private)
        .add_columns(s.incarnations.c.state, func.count())
        .group_by(s.incarnations.c.state)
    )
    return {str(state): int(count) for state, count in conn.execute(stmt)}


def flat_keys(doc: Any, prefix: str = "", depth: int = 0) -> list[str]:
    """Dot paths of a config or summary's leaves; typed objects (histograms, media) count as leaves."""
    if not isinstance(doc, dict) or (prefix and "_type" in doc) or depth >= _MAX_DEPTH:
        return [prefix] if prefix else []
    if prefix and not doc:
        return [prefix]
    keys: list[str] = []
    for name, value in doc.items():
        path = f"{prefix}.{name}" if prefix else str(name)
        keys.extend(flat_keys(value, path, depth + 1))
    return keys


def project_columns(
    conn: Connection, entity: str, project: str, *, sample: int = 2000, cap: int = 300, include_private: bool = True
) -> dict[str, list[str]]:
    """Config and summary keys of the project's latest `sample` runs, most common first (private
    runs' keys left out unless `include_private`)."""
    stmt = (
        _current_of_project(entity, project, include_private)
        .add_columns(s.incarnations.c.config, s.incarnations.c.summary)
        .order_by(s.runs.c.created_at.desc())
        .limit(sample)
    )
    config: Counter[str] = Counter()
    summary: Counter[str] = Counter()
    for cfg, summ in conn.execute(stmt):
        config.update(k for k in flat_keys(cfg or {}) if not k.startswith("_"))
        summary.update(k for k in flat_keys(summ or {}) if not k.startswith("_"))

    def ranked(counter: Counter[str]) -> list[str]:
        return [k for k, _ in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))][:cap]

    return {"config": ranked(config), "summary": ranked(summary)}


def incarnation_owners(conn: Connection, incarnation_ids: list[str]) -> dict[str, tuple[str, str]]:
    """(entity, project) of each known incarnation among the ids; unknown ones are absent.

    An incarnation whose run was deleted while forks still read it keeps its old path, as in
    `auth.incarnation_owner`."""
    i, p = s.incarnations.c, s.projects.c
    found: dict[str, tuple[str, str]] = {}
    unique = list(dict.fromkeys(incarnation_ids))
    for start in range(0, len(unique), _BATCH):
        stmt = (
            select(i.id, p.entity, p.name, i.detached_path)
            .select_from(s.incarnations)
            .outerjoin(s.runs, s.runs.c.pk == i.run_pk)
            .outerjoin(s.projects, p.id == s.runs.c.project_id)
            .where(i.id.in_(unique[start : start + _BATCH]))
        )
        for inc_id, entity, project, detached in conn.execute(stmt):
            if entity is not None:
                found[str(inc_id)] = (str(entity), str(project))
                continue
            parts = str(detached or "").split("/")
            if len(parts) >= 3:
                found[str(inc_id)] = (parts[0], parts[1])
    return found


def run_artifact_summaries(conn: Connection, incarnation_id: str) -> dict[str, list[dict[str, Any]]]:
    """Artifact versions an incarnation logged and used, with their aliases, as the web app lists them."""
    v, c, u = s.artifact_versions.c, s.artifact_collections.c, s.artifact_usage.c
    stmt = (
        select(
            v.id,
            s.projects.c.entity,
            s.projects.c.name.label("project"),
            c.name,
            c.type,
            v.version_index,
            v.digest,
            v.size,
            v.file_count,
            v.description,
            v.created_at,
            u.role,
        )
        .select_from(s.artifact_usage)
        .join(s.artifact_versions, v.id == u.version_id)
        .join(s.artifact_collections, c.id == v.collection_id)
        .join(s.projects, s.projects.c.id == c.project_id)
        .where(u.incarnation_id == incarnation_id)
        .order_by(u.at)
    )
    rows = conn.execute(stmt).all()
    aliases: dict[str, list[str]] = {}
    ids = [row.id for row in rows]
    if ids:
        a = s.artifact_aliases.c
        for version_id, alias in conn.execute(
            select(a.version_id, a.alias).where(a.version_id.in_(ids)).order_by(a.alias)
        ):
            aliases.setdefault(version_id, []).append(alias)
    out: dict[str, list[dict[str, Any]]] = {"logged": [], "used": []}
    for row in rows:
        out["logged" if row.role == "logged" else "used"].append(
            {
                "id": row.id,
                "entity": row.entity,
                "project": row.project,
                "name": row.name,
                "type": row.type,
                "version": f"v{row.version_index}",
                "aliases": aliases.get(row.id, []),
                "digest": row.digest,
                "size": int(row.size),
                "file_count": int(row.file_count),
                "description": row.description,
                "created_at": float(row.created_at),
            }
        )
    return out


def blob_in_project(conn: Connection, entity: str, project: str, digest: str) -> bool:
    """Whether a version or a run file of `entity/project` names blob `digest`."""
    e, p = s.artifact_entries.c, s.projects.c
    in_project = and_(p.entity == entity, p.name == project)
    in_versions = (
        select(e.digest)
        .select_from(s.artifact_entries)
        .join(s.artifact_versions, s.artifact_versions.c.id == e.version_id)
        .join(s.artifact_collections, s.artifact_collections.c.id == s.artifact_versions.c.collection_id)
        .join(s.projects, p.id == s.artifact_collections.c.project_id)
        .where(e.digest == digest, e.ref.is_(None), in_project)
    )
    f = s.run_files.c
    in_files = (
        select(f.sha256)
        .select_from(s.run_files)
        .join(s.incarnations, s.incarnations.c.id == f.incarnation_id)
        .join(s.runs, s.runs.c.pk == s.incarnations.c.run_pk)
        .join(s.projects, p.id == s.runs.c.project_id)
        .where(f.sha256 == digest, in_project)
    )
    return bool(conn.execute(select(exists(in_versions) | exists(in_files))).scalar())
