"""Saved workspace layouts: the panels a project's workspace (or its run pages) shows once edited.

The store keeps the layout as JSON text it does not interpret: the server validates its shape and
size before saving. `version` grows by one on every save; a save that names the version it edited
(`expected_version`) is refused when someone else saved in between, so two editors never silently
overwrite each other. No saved layout means the web app builds the automatic one.
"""

from __future__ import annotations

import json
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from branchline.errors import StoreError, UsageError
from branchline.store.schema import workspaces

__all__ = [
    "WORKSPACE_VIEWS",
    "WorkspaceConflictError",
    "WorkspaceRow",
    "WorkspaceStoreMixin",
    "delete_workspace",
    "get_workspace",
    "save_workspace",
]

#: The views a layout can be saved for: the project's workspace and the run page's Workspace tab.
WORKSPACE_VIEWS = ("project", "run")


class WorkspaceConflictError(StoreError):
    """The layout was saved by someone else since the version the caller edited."""

    def __init__(self, message: str, current_version: int) -> None:
        super().__init__(message)
        self.current_version = current_version


@dataclass(frozen=True)
class WorkspaceRow:
    layout: dict[str, Any]
    version: int
    updated_at: float
    updated_by: str | None


def _check_view(view: str) -> None:
    if view not in WORKSPACE_VIEWS:
        raise UsageError(f"Unknown workspace view {view!r}: use one of {', '.join(WORKSPACE_VIEWS)}.")


def _where(entity: str, project: str, view: str) -> Any:
    c = workspaces.c
    return (c.entity == entity) & (c.project == project) & (c.view == view)


def get_workspace(conn: Connection, entity: str, project: str, view: str = "project") -> WorkspaceRow | None:
    _check_view(view)
    c = workspaces.c
    row = conn.execute(
        select(c.layout, c.version, c.updated_at, c.updated_by).where(_where(entity, project, view))
    ).first()
    if row is None:
        return None
    layout = json.loads(row.layout)
    return WorkspaceRow(layout, int(row.version), float(row.updated_at), row.updated_by)


def save_workspace(
    conn: Connection,
    entity: str,
    project: str,
    layout: dict[str, Any],
    *,
    view: str = "project",
    expected_version: int | None = None,
    updated_by: str | None = None,
    now: float,
) -> WorkspaceRow:
    """Save `layout`; `expected_version` (0: none saved yet) guards against a concurrent save."""
    _check_view(view)
    text = json.dumps(layout, separators=(",", ":"), allow_nan=False)
    where = _where(entity, project, view)
    current = conn.execute(select(workspaces.c.version).where(where)).scalar()
    current_version = 0 if current is None else int(current)
    if expected_version is not None and expected_version != current_version:
        raise _conflict(expected_version, current_version)
    version = current_version + 1
    values = {"layout": text, "version": version, "updated_at": now, "updated_by": updated_by}
    if current is None:
        try:
            with conn.begin_nested():
                conn.execute(insert(workspaces).values(entity=entity, project=project, view=view, **values))
        except IntegrityError:
            # Another writer created it between our read and insert (PostgreSQL's read committed).
            latest = conn.execute(select(workspaces.c.version).where(where)).scalar()
            raise _conflict(current_version, int(latest or 0)) from None
    else:
        done = conn.execute(update(workspaces).where(where, workspaces.c.version == current_version).values(**values))
        if done.rowcount != 1:
            latest = conn.execute(select(workspaces.c.version).where(where)).scalar()
            raise _conflict(current_version, int(latest or 0))
    return WorkspaceRow(layout=layout, version=version, updated_at=now, updated_by=updated_by)


def delete_workspace(conn: Connection, entity: str, project: str, view: str = "project") -> bool:
    """Forget the saved layout (the web app goes back to the automatic one); False if none was saved."""
    _check_view(view)
    return bool(conn.execute(delete(workspaces).where(_where(entity, project, view))).rowcount)


def _conflict(expected: int, current: int) -> WorkspaceConflictError:
    return WorkspaceConflictError(
        f"The workspace was saved by someone else since version {expected} (it is now at version {current}). "
        "Reload it and apply your change again.",
        current,
    )


class WorkspaceStoreMixin:
    """`Store` methods for saved layouts; each is one short transaction around the functions above."""

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def get_workspace(self, entity: str, project: str, view: str = "project") -> WorkspaceRow | None:
        with self._read() as conn:
            return get_workspace(conn, entity, project, view)

    def save_workspace(
        self,
        entity: str,
        project: str,
        layout: dict[str, Any],
        *,
        view: str = "project",
        expected_version: int | None = None,
        updated_by: str | None = None,
    ) -> WorkspaceRow:
        with self._write() as conn:
            return save_workspace(
                conn,
                entity,
                project,
                layout,
                view=view,
                expected_version=expected_version,
                updated_by=updated_by,
                now=time.time(),
            )

    def delete_workspace(self, entity: str, project: str, view: str = "project") -> bool:
        with self._write() as conn:
            return delete_workspace(conn, entity, project, view)
