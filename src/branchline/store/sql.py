"""SQL helpers of the write path that work on SQLite and PostgreSQL alike: upsert, ensure a project."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, select

from branchline.store.schema import projects

__all__ = ["dialect_insert", "ensure_project", "upsert"]


def dialect_insert(conn: Connection) -> Any:
    """The dialect's INSERT (with ON CONFLICT), imported on use: SQLite users never load PostgreSQL's."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def upsert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows, replacing those whose primary key exists (SQLite and PostgreSQL)."""
    if not rows:
        return
    keys = [c.name for c in table.primary_key.columns]
    stmt = dialect_insert(conn)(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=keys,
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys},
    )
    # Keep statements bounded: SQLite limits the number of bound parameters per statement.
    per = max(1, 30000 // max(1, len(table.columns)))
    for offset in range(0, len(rows), per):
        conn.execute(stmt, rows[offset : offset + per])


def ensure_project(conn: Connection, entity: str, project: str, now: float) -> int:
    """The id of `entity/project`, created (race-free) when missing."""
    found = conn.execute(select(projects.c.id).where(projects.c.entity == entity, projects.c.name == project)).scalar()
    if found is not None:
        return int(found)
    insert = dialect_insert(conn)
    conn.execute(
        insert(projects).values(entity=entity, name=project, created_at=now, public=False).on_conflict_do_nothing()
    )
    return int(
        conn.execute(select(projects.c.id).where(projects.c.entity == entity, projects.c.name == project)).scalar_one()
    )
