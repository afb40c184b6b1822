"""Starting a plain new run on the embedded store without importing SQLAlchemy.

A new run with a generated id in an embedded SQLite store needs one fact from the store: how many
runs its project has, for the run's name. That is read here with the standard library, the run's
start is built locally, and the writer process creates the run in the store (`begin_run` is
idempotent on the session, so the journal header replays to the same run). This keeps SQLAlchemy
and numpy out of the training process, and about half a second off `init()`.

Anything else takes the full path through the store: a given id, resume, fork or rewind (they
read the stored run), a PostgreSQL store, a store at another schema revision (the store explains
what to do), or journals of crashed runs waiting to be stored.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from branchline.runspec import RunSpec, RunStart
from branchline.schema_revision import SCHEMA_REVISION
from branchline.settings import Settings
from branchline.strict_json import strict_value
from branchline.vocab import random_run_name

__all__ = ["fast_start", "sqlite_path"]


def sqlite_path(store_url: str) -> Path | None:
    """The file of a plain `sqlite:///path` URL; None for anything else (PostgreSQL, memory, options)."""
    prefix = "sqlite:///"
    if not store_url.startswith(prefix) or "?" in store_url:
        return None
    path = store_url[len(prefix) :]
    return Path(path) if path and path != ":memory:" else None


def fast_start(settings: Settings, spec: RunSpec) -> RunStart | None:
    """The start of a plain new run, built without the store; None when it needs the full path."""
    if settings.mode != "online" or settings.base_url or settings.run_id is not None:
        return None
    if spec.resume is not None or spec.fork_from is not None or spec.resume_from is not None:
        return None
    path = sqlite_path(settings.resolved_store_url)
    if path is None or _journals_to_replay(settings):
        return None
    count = _project_run_count(path, spec.entity, spec.project)
    if count is None:
        return None
    if spec.name is None:
        spec.name = random_run_name(count + 1)
    start = RunStart.without_store(spec, name=spec.name)
    start.config = strict_value(spec.config)  # what reading it back from the store would give
    return start


def _journals_to_replay(settings: Settings) -> bool:
    root = settings.branchline_dir
    if not (root / "runs").exists():
        return False
    from branchline.sdk.sync import pending_journals

    return bool(pending_journals(root))


def _project_run_count(path: Path, entity: str, project: str) -> int | None:
    """How many runs the project has; 0 for a store not created yet; None if the store needs the full path."""
    if not path.exists():
        return 0  # the writer creates the store
    try:
        conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        if row is None or row[0] != SCHEMA_REVISION:
            return None
        (count,) = conn.execute(
            "SELECT count(*) FROM runs JOIN projects ON projects.id = runs.project_id "
            "WHERE projects.entity = ? AND projects.name = ?",
            (entity, project),
        ).fetchone()
        return int(count)
    except sqlite3.Error:
        return None  # no branchline store, or a damaged one: the full path says what is wrong
    finally:
        conn.close()
