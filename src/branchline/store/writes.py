"""The write path's entry points, gathered from the modules that own them.

- begin.py: starting runs (new, resume, fork, rewind);
- apply.py: applying journal records (a dispatch table of one handler per record kind);
- columns.py: a batch's history as columns and chunks;
- liveness.py: heartbeats, pid checks, reaping runs whose writer is gone;
- sql.py: upsert and the dialect's INSERT.
"""

from __future__ import annotations

from branchline.store.apply import apply_records, skip_records
from branchline.store.begin import begin_run, forked_from_info
from branchline.store.liveness import (
    heartbeat,
    is_alive,
    pid_alive,
    reap_stale,
    resumed_since,
    stale_incarnations,
)
from branchline.store.sql import dialect_insert, ensure_project, upsert

__all__ = [
    "apply_records",
    "begin_run",
    "dialect_insert",
    "ensure_project",
    "forked_from_info",
    "heartbeat",
    "is_alive",
    "pid_alive",
    "reap_stale",
    "resumed_since",
    "skip_records",
    "stale_incarnations",
    "upsert",
]
