"""Runs as the API shows them: brief (lists of incarnations), item (runs lists) and detail."""

from __future__ import annotations

from typing import Any

from branchline.store import RunView

__all__ = ["duration_of", "run_brief", "run_detail", "run_item"]


def duration_of(view: RunView) -> float:
    """Wall-clock seconds from start to finish, or to the last heartbeat while running."""
    end = view.finished_at if view.finished_at is not None else view.heartbeat_at
    return max(0.0, float(end) - float(view.started_at))


def run_brief(view: RunView) -> dict[str, Any]:
    return {
        "entity": view.entity,
        "project": view.project,
        "run_id": view.run_id,
        "path": view.path,
        "incarnation_id": view.incarnation_id,
        "name": view.name,
        "state": view.state,
        "created_at": view.created_at,
        "started_at": view.started_at,
        "heartbeat_at": view.heartbeat_at,
        "finished_at": view.finished_at,
        "runtime": view.runtime,
        "duration": duration_of(view),
        "last_step": view.last_step,
        "archived": view.archived,
        "ordinal": view.ordinal,
        "forked_from": view.forked_from,
    }


def run_item(view: RunView) -> dict[str, Any]:
    out = run_brief(view)
    out.update(
        notes=view.notes,
        tags=view.tags,
        group=view.group,
        job_type=view.job_type,
        host=view.host,
        username=view.username,
        updated_at=view.updated_at,
        exit_code=view.exit_code,
        stop_requested=view.stop_requested,
        starting_step=view.starting_step,
        config=view.config,
        summary=view.summary,
    )
    return out


def run_detail(
    view: RunView, *, current_incarnation_id: str, archived: list[RunView], forks: list[RunView]
) -> dict[str, Any]:
    out = run_item(view)
    out.update(
        metadata=view.metadata,
        archived_incarnations=[run_brief(a) for a in archived],
        forks=[run_brief(f) for f in forks],
        current_incarnation_id=current_incarnation_id,
    )
    return out
