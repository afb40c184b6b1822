"""Extra writer sessions for one incarnation, and console lines written at given line numbers.

A client that streams several files of a run at independent offsets (the W&B protocol's history,
system metrics and control lines) gets one writer session per stream: each session's applied
sequence is then that stream's offset, so a replayed or retried chunk stores nothing twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from branchline.store.liveness import incarnation_row
from branchline.store.schema import console_lines, writer_sessions
from branchline.store.sql import upsert

__all__ = ["console_at", "stream_session", "stream_session_id"]


def stream_session_id(incarnation_id: str, stream: str) -> str:
    """The session id of stream `stream` of an incarnation: the same on every replica and restart."""
    return hashlib.sha256(f"{incarnation_id}\0{stream}".encode()).hexdigest()[:32]


def stream_session(conn: Connection, incarnation_id: str, stream: str, now: float) -> str:
    """The id of the incarnation's writer session for `stream`, created on first use."""
    incarnation_row(conn, incarnation_id)  # refuses an unknown incarnation
    session_id = stream_session_id(incarnation_id, stream)
    found = conn.execute(select(writer_sessions.c.id).where(writer_sessions.c.id == session_id)).first()
    if found is None:
        conn.execute(
            writer_sessions.insert().values(id=session_id, incarnation_id=incarnation_id, applied_seq=0, started_at=now)
        )
    return session_id


def console_at(conn: Connection, incarnation_id: str, first: int, lines: Sequence[Sequence[Any]]) -> None:
    """Write console lines `[stream, timestamp, text]` at line numbers `first`, `first + 1`, …,
    replacing what those line numbers held (a progress bar rewrites its line)."""
    incarnation_row(conn, incarnation_id)
    rows = [
        {"incarnation_id": incarnation_id, "line_no": first + i, "stream": str(s), "ts": float(ts), "text": str(text)}
        for i, (s, ts, text) in enumerate(lines)
    ]
    upsert(conn, console_lines, rows)
