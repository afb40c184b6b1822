"""Reads the web app needs that the Store facade does not offer (read-only SQL on its tables)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import case, func, select

from branchline.store import Store
from branchline.store.schema import (
    artifact_aliases,
    artifact_collections,
    artifact_usage,
    artifact_versions,
    incarnations,
    projects,
    runs,
)

__all__ = ["flat_keys", "project_columns", "project_rows", "run_artifacts", "state_counts"]

_MAX_DEPTH = 4


def project_rows(store: Store, entity: str | None = None) -> list[dict[str, Any]]:
    """Projects with run counts, running runs and last activity (latest edit or heartbeat)."""
    running = func.sum(case((incarnations.c.state == "running", 1), else_=0))
    stmt = (
        select(
            projects.c.entity,
            projects.c.name,
            projects.c.created_at,
            func.count(runs.c.pk).label("run_count"),
            running.label("running_count"),
            func.max(runs.c.updated_at).label("updated"),
            func.max(incarnations.c.heartbeat_at).label("heartbeat"),
        )
        .select_from(projects)
        .outerjoin(runs, runs.c.project_id == projects.c.id)
        .outerjoin(incarnations, incarnations.c.id == runs.c.current_incarnation)
        .group_by(projects.c.id, projects.c.entity, projects.c.name, projects.c.created_at)
        .order_by(projects.c.entity, projects.c.name)
    )
    if entity is not None:
        stmt = stmt.where(projects.c.entity == entity)
    out = []
    with store.engine.connect() as conn:
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


def state_counts(store: Store, entity: str, project: str) -> dict[str, int]:
    stmt = (
        select(incarnations.c.state, func.count())
        .select_from(runs)
        .join(projects, projects.c.id == runs.c.project_id)
        .join(incarnations, incarnations.c.id == runs.c.current_incarnation)
        .where(projects.c.entity == entity, projects.c.name == project)
        .group_by(incarnations.c.state)
    )
    with store.engine.connect() as conn:
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


def project_columns(store: Store, entity: str, project: str, *, sample: int = 2000, cap: int = 300) -> dict[str, Any]:
    """Config and summary keys of the project's latest `sample` runs, most common first."""
    stmt = (
        select(incarnations.c.config, incarnations.c.summary)
        .select_from(runs)
        .join(projects, projects.c.id == runs.c.project_id)
        .join(incarnations, incarnations.c.id == runs.c.current_incarnation)
        .where(projects.c.entity == entity, projects.c.name == project)
        .order_by(runs.c.created_at.desc())
        .limit(sample)
    )
    config: Counter[str] = Counter()
    summary: Counter[str] = Counter()
    with store.engine.connect() as conn:
        for cfg, summ in conn.execute(stmt):
            config.update(k for k in flat_keys(cfg or {}) if not k.startswith("_"))
            summary.update(k for k in flat_keys(summ or {}) if not k.startswith("_"))

    def ranked(counter: Counter[str]) -> list[str]:
        return [k for k, _ in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))][:cap]

    return {"config": ranked(config), "summary": ranked(summary)}


def run_artifacts(store: Store, incarnation_id: str) -> dict[str, list[dict[str, Any]]]:
    """Artifact versions an incarnation logged and used, with their aliases."""
    v, c = artifact_versions.c, artifact_collections.c
    stmt = (
        select(
            v.id,
            projects.c.entity,
            projects.c.name.label("project"),
            c.name,
            c.type,
            v.version_index,
            v.digest,
            v.size,
            v.file_count,
            v.description,
            v.created_at,
            artifact_usage.c.role,
        )
        .select_from(artifact_usage)
        .join(artifact_versions, v.id == artifact_usage.c.version_id)
        .join(artifact_collections, c.id == v.collection_id)
        .join(projects, projects.c.id == c.project_id)
        .where(artifact_usage.c.incarnation_id == incarnation_id)
        .order_by(artifact_usage.c.at)
    )
    out: dict[str, list[dict[str, Any]]] = {"logged": [], "used": []}
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
        ids = [row.id for row in rows]
        aliases: dict[str, list[str]] = {}
        if ids:
            for version_id, alias in conn.execute(
                select(artifact_aliases.c.version_id, artifact_aliases.c.alias)
                .where(artifact_aliases.c.version_id.in_(ids))
                .order_by(artifact_aliases.c.alias)
            ):
                aliases.setdefault(version_id, []).append(alias)
    for row in rows:
        bucket = out["logged"] if row.role == "logged" else out["used"]
        bucket.append(
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
