"""Whether a run's writer is alive: heartbeats, pid checks, and reaping runs whose writer is gone."""

from __future__ import annotations

import socket
from typing import Any

from sqlalchemy import Connection, and_, select, update

from branchline.errors import StoreError
from branchline.processes import pid_alive
from branchline.store.schema import incarnations, runs, writer_sessions
from branchline.vocab import RunState

__all__ = [
    "heartbeat",
    "incarnation_row",
    "is_alive",
    "pid_alive",
    "reap_stale",
    "resumed_since",
    "stale_incarnations",
    "writer_process_alive",
]


def is_alive(inc: Any, now: float, timeout: float) -> bool:
    """Whether an incarnation marked running still has a live writer."""
    if inc.state not in (RunState.RUNNING, RunState.PREEMPTING):
        return False
    if inc.host == socket.gethostname() and inc.pid:
        return pid_alive(inc.pid)
    return bool(now - inc.heartbeat_at < timeout)


def writer_process_alive(inc: Any) -> bool:
    """False only when the incarnation's process is on this host and known to be gone."""
    if inc.host == socket.gethostname() and inc.pid:
        return pid_alive(inc.pid)
    return True


def incarnation_row(conn: Connection, incarnation_id: str) -> Any:
    row = conn.execute(select(incarnations).where(incarnations.c.id == incarnation_id)).first()
    if row is None:
        raise StoreError(f"Incarnation {incarnation_id} is missing from the store.")
    return row


def heartbeat(conn: Connection, incarnation_id: str, now: float) -> bool:
    """Record that the run is alive; returns whether a stop was requested."""
    inc = incarnation_row(conn, incarnation_id)
    values: dict[str, Any] = {"heartbeat_at": now}
    if inc.state == RunState.CRASHED and writer_process_alive(inc):
        values["state"] = RunState.RUNNING.value
    conn.execute(update(incarnations).where(incarnations.c.id == incarnation_id).values(**values))
    if inc.run_pk is None:
        return False
    return bool(conn.execute(select(runs.c.stop_requested).where(runs.c.pk == inc.run_pk)).scalar())


def resumed_since(conn: Connection, incarnation_id: str, session_id: str) -> bool:
    """Whether a writer session started on the incarnation after `session_id` did."""
    ws = writer_sessions.c
    started = select(ws.started_at).where(ws.id == session_id).scalar_subquery()
    later = select(ws.id).where(ws.incarnation_id == incarnation_id, ws.id != session_id, ws.started_at > started)
    return conn.execute(later.limit(1)).first() is not None


def stale_incarnations(conn: Connection, now: float, timeout: float) -> list[Any]:
    """Incarnations marked running (or preempting) whose writer is gone."""
    c = incarnations.c
    live = conn.execute(
        select(c.id, c.state, c.pid, c.host, c.heartbeat_at).where(
            c.state.in_([RunState.RUNNING.value, RunState.PREEMPTING.value])
        )
    ).all()
    return [row for row in live if not is_alive(row, now, timeout)]


def reap_stale(conn: Connection, now: float, timeout: float) -> int:
    """Mark running incarnations whose writer is gone as crashed (preempting ones as preempted)."""
    dead = stale_incarnations(conn, now, timeout)
    for row in dead:
        new_state = RunState.PREEMPTED if row.state == RunState.PREEMPTING else RunState.CRASHED
        conn.execute(
            update(incarnations)
            .where(and_(incarnations.c.id == row.id, incarnations.c.state == row.state))
            .values(state=new_state.value)
        )
    return len(dead)
