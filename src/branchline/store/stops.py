"""Stopping a run from the UI or API, and making sure every stop ends in a known state.

A stop request sets `runs.stop_requested` and records when it was made. The writer sees the flag
at its next heartbeat and interrupts the training process, escalating to SIGTERM and SIGKILL when
the interrupt is ignored (sdk/stopping.py). The store bounds the wait on its own: a stop that has
not ended the run `stop_timeout` seconds after it was requested (the process ignores every
signal, or its host is gone so nothing can escalate) marks the run `killed` with a note saying so.

When and how a stop ended is kept in the incarnation's `run_metadata` under `STOP_KEY`
(`{"requested_at": t, "ended_at": t, "note": "..."}`): metadata is a JSON column already, so no
schema revision is needed, and the web app reads it with the rest of the run.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, select, update

from branchline.store.schema import incarnations, runs
from branchline.vocab import RunState

__all__ = [
    "DEFAULT_STOP_TIMEOUT",
    "NOTE_ENDED",
    "NOTE_ESCALATED",
    "NOTE_UNCONFIRMED",
    "STOP_KEY",
    "end_dead_stops",
    "mark_killed",
    "overdue_stops",
    "reap_overdue_stops",
    "record_stop_request",
    "without_stop",
]

#: Seconds after a stop request by which the run must have ended; past it the store marks it killed.
#: It covers the SDK's heartbeat (30 s), the interrupt's grace (15 s) and SIGTERM's grace (15 s).
DEFAULT_STOP_TIMEOUT = 120.0
#: The metadata key holding the stop's times and note.
STOP_KEY = "stop"
#: The writer ended the run: the training process ignored the interrupt and was terminated.
NOTE_ESCALATED = "stopped from the UI; the process ignored the interrupt and was terminated"
#: The store ended the run: nothing confirmed the stop within the bound.
NOTE_UNCONFIRMED = (
    "stopped from the UI; the process did not confirm the stop within {seconds:g} s "
    "(it ignored the signals or its host is unreachable), so the run was marked killed"
)

#: The store ended the run: its process was gone (on this host, its pid) with a stop pending.
NOTE_ENDED = "stopped from the UI; the process has ended"

_LIVE = (RunState.RUNNING.value, RunState.PREEMPTING.value, RunState.PENDING.value)


def _stop_info(metadata: Any) -> dict[str, Any]:
    info = dict(metadata or {}).get(STOP_KEY)
    return dict(info) if isinstance(info, dict) else {}


def record_stop_request(conn: Connection, run_pk: int | None, incarnation_id: str, now: float) -> None:
    """Flag the run for stopping and remember when (a repeated request keeps the first time)."""
    if run_pk is None:
        return  # a deleted run's incarnation: nothing runs it
    pending = conn.execute(select(runs.c.stop_requested).where(runs.c.pk == run_pk)).scalar()
    conn.execute(update(runs).where(runs.c.pk == run_pk).values(stop_requested=True))
    row = conn.execute(select(incarnations.c.run_metadata).where(incarnations.c.id == incarnation_id)).first()
    if row is None:
        return
    metadata = dict(row.run_metadata or {})
    info = _stop_info(metadata)
    if pending and "requested_at" in info and "ended_at" not in info:
        return
    metadata[STOP_KEY] = {"requested_at": now}
    conn.execute(update(incarnations).where(incarnations.c.id == incarnation_id).values(run_metadata=metadata))


def without_stop(metadata: Any) -> dict[str, Any]:
    """Metadata without a past stop's record, for a new incarnation that copies it."""
    return {k: v for k, v in dict(metadata or {}).items() if k != STOP_KEY}


def mark_killed(conn: Connection, incarnation_id: str, note: str, now: float) -> bool:
    """End a live incarnation as `killed` with `note`; whether it was live (a finished run stays as it is).

    A run killed with the provisional `NOTE_ENDED` (its process was seen gone before the writer said
    why) takes the writer's more precise note, keeping the time it ended.
    """
    row = conn.execute(
        select(incarnations.c.state, incarnations.c.run_metadata).where(incarnations.c.id == incarnation_id)
    ).first()
    if row is None:
        return False
    metadata = dict(row.run_metadata or {})
    info = _stop_info(metadata)
    if row.state == RunState.KILLED and info.get("note") == NOTE_ENDED and note != NOTE_ENDED:
        metadata[STOP_KEY] = {**info, "note": note}
        conn.execute(update(incarnations).where(incarnations.c.id == incarnation_id).values(run_metadata=metadata))
        return True
    if row.state not in _LIVE:
        return False
    metadata[STOP_KEY] = {**info, "ended_at": now, "note": note}
    done = conn.execute(
        update(incarnations)
        .where(and_(incarnations.c.id == incarnation_id, incarnations.c.state == row.state))
        .values(state=RunState.KILLED.value, finished_at=now, run_metadata=metadata)
    )
    return bool(done.rowcount)


def overdue_stops(conn: Connection, now: float, timeout: float) -> list[Any]:
    """Live runs asked to stop `timeout` seconds ago or more, or whose request time was lost."""
    c = incarnations.c
    rows = conn.execute(
        select(c.id, c.run_metadata)
        .join(runs, runs.c.pk == c.run_pk)
        .where(runs.c.stop_requested.is_(True), runs.c.current_incarnation == c.id, c.state.in_(_LIVE))
    ).all()
    overdue = []
    for row in rows:
        requested = _stop_info(row.run_metadata).get("requested_at")
        if not isinstance(requested, (int, float)) or now - float(requested) >= timeout:
            overdue.append(row)
    return overdue


def reap_overdue_stops(conn: Connection, now: float, timeout: float) -> int:
    """Mark killed every live run asked to stop more than `timeout` seconds ago; how many."""
    killed = 0
    for row in overdue_stops(conn, now, timeout):
        metadata = dict(row.run_metadata or {})
        info = _stop_info(metadata)
        if not isinstance(info.get("requested_at"), (int, float)):
            # The time was lost (a metadata write raced the request): the bound starts now.
            metadata[STOP_KEY] = {**info, "requested_at": now}
            conn.execute(update(incarnations).where(incarnations.c.id == row.id).values(run_metadata=metadata))
            continue
        killed += mark_killed(conn, row.id, NOTE_UNCONFIRMED.format(seconds=timeout), now)
    return killed


def end_dead_stops(conn: Connection, stale: list[Any], now: float) -> int:
    """Of the incarnations found with their writer gone, mark killed those asked to stop.

    Without this the crash reaper, which sees a process on this host gone at once, would mark
    `crashed` a run that a stop just ended, before its writer has stored the journal and said so.
    """
    ids = [row.id for row in stale]
    if not ids:
        return 0
    c = incarnations.c
    asked = conn.execute(
        select(c.id)
        .join(runs, runs.c.pk == c.run_pk)
        .where(c.id.in_(ids), runs.c.stop_requested.is_(True), runs.c.current_incarnation == c.id)
    ).all()
    return sum(mark_killed(conn, row.id, NOTE_ENDED, now) for row in asked)
