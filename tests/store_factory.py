"""Build runs directly in a store, without an SDK writer process, and PostgreSQL test schemas.

`init()` spawns a writer (~0.3 s), which is too slow for tests needing dozens of runs; these helpers
go through the same `Store.begin_run` / `Store.apply` the writer uses, so the data is identical.

    store = open_store(url)
    view = add_run(store, project="p", config={"lr": 0.1}, history=[(0, {"loss": 1.0})])
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sqlalchemy import update

from branchline.runspec import RunSpec
from branchline.store import history as hist
from branchline.store.reads import RunView
from branchline.store.schema import history_chunks, runs
from branchline.store.store import Store
from branchline.store.writes import upsert
from branchline.vocab import RecordKind

__all__ = [
    "PG_URL",
    "BACKENDS",
    "add_run",
    "any_store_url",
    "fresh_url",
    "pg_available",
    "pg_schema_url",
    "set_created_at",
    "write_series",
]

#: The test PostgreSQL server (trust auth); each test session works in its own schema.
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"

_EXIT_CODES = {"finished": 0, "failed": 1, "crashed": 1, "killed": 255, "preempted": 1}


def pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3):
            return True
    except Exception:
        return False


@contextmanager
def pg_schema_url(prefix: str = "bl_test") -> Iterator[str]:
    """A store URL on the test server pointing at a fresh schema, dropped afterwards."""
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _records(
    history: Iterable[tuple[int, Mapping[str, Any]]],
    *,
    summary: Mapping[str, Any] | None,
    system: Iterable[Mapping[str, Any]],
    console: Iterable[str],
    files: Iterable[tuple[str, int]],
    state: str,
    exit_code: int | None,
    start: float,
) -> list[list[Any]]:
    records: list[list[Any]] = []

    def add(kind: int, *fields: Any) -> None:
        records.append([len(records) + 1, kind, *fields])

    runtime = 0.0
    for step, row in history:
        runtime += 0.01
        add(RecordKind.HISTORY, int(step), start + runtime, runtime, dict(row))
    for i, sample in enumerate(system):
        add(RecordKind.SYSTEM, start + i, float(i), dict(sample))
    lines = [["stdout", start, text] for text in console]
    if lines:
        add(RecordKind.OUTPUT, lines)
    for path, size in files:
        add(RecordKind.FILE, path, size, "0" * 64, start)
    if summary:
        add(RecordKind.SUMMARY, [[key.split("."), value] for key, value in summary.items()], [])
    if state not in ("running", "preempting"):
        code = _EXIT_CODES.get(state, 1) if exit_code is None else exit_code
        add(RecordKind.EXIT, code, state, runtime)
    elif state == "preempting":
        add(RecordKind.PREEMPTING)
    return records


def add_run(
    store: Store,
    *,
    entity: str = "e",
    project: str = "p",
    run_id: str | None = None,
    name: str | None = None,
    notes: str | None = None,
    tags: list[str] | None = None,
    group: str | None = None,
    job_type: str | None = None,
    host: str = "node-a",
    username: str = "tester",
    config: Mapping[str, Any] | None = None,
    history: Iterable[tuple[int, Mapping[str, Any]]] | Mapping[int, Mapping[str, Any]] = (),
    summary: Mapping[str, Any] | None = None,
    system: Iterable[Mapping[str, Any]] = (),
    console: Iterable[str] = (),
    files: Iterable[tuple[str, int]] = (),
    state: str = "finished",
    exit_code: int | None = None,
    created_at: float | None = None,
    fork_from: str | None = None,
    resume_from: str | None = None,
    resume: str | None = None,
    branch_step: int | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> RunView:
    """Create (or fork, rewind, resume) a run, apply its records, and return it as readers see it.

    `state="running"` leaves it running: its host is not this machine, so it stays alive until the
    crash timeout. `summary` keys are dotted paths of explicit summary edits.
    """
    run_id = run_id or (resume_from or secrets.token_hex(4))
    spec = RunSpec(
        entity=entity,
        project=project,
        run_id=run_id,
        incarnation_id=secrets.token_hex(8),
        session_id=secrets.token_hex(8),
        name=name,
        notes=notes,
        tags=tags,
        group=group,
        job_type=job_type,
        config=dict(config or {}),
        fork_from=fork_from,
        resume_from=resume_from,
        resume=resume,
        branch_step=branch_step,
        host=host,
        username=username,
        started_at=time.time(),
        metadata=dict(metadata or {}),
    )
    store.begin_run(spec)
    rows = sorted(history.items()) if isinstance(history, Mapping) else list(history)
    records = _records(
        rows,
        summary=summary,
        system=system,
        console=console,
        files=files,
        state=state,
        exit_code=exit_code,
        start=spec.started_at,
    )
    # Batches like the writer's, so long histories exercise the chunk tail logic too.
    for offset in range(0, len(records), 5000):
        store.apply(spec.session_id, records[offset : offset + 5000])
    if created_at is not None:
        set_created_at(store, entity, project, run_id, created_at)
    return store.require_run(entity, project, run_id)


def set_created_at(store: Store, entity: str, project: str, run_id: str, created_at: float) -> None:
    """Backdate a run (creation time is otherwise the wall clock at `begin_run`)."""
    view = store.require_run(entity, project, run_id)
    with store.engine.begin() as conn:
        conn.execute(update(runs).where(runs.c.pk == view.pk).values(created_at=created_at))


def write_series(
    store: Store,
    incarnation_id: str,
    key: str,
    steps: npt.NDArray[np.int64],
    values: npt.NDArray[Any],
    *,
    stream: int = 0,
) -> None:
    """Write a long numeric series straight into history chunks (fast fixture for 1e5+ points).

    Bypasses summaries and last_step bookkeeping: use on a run whose history is written this way only.
    """
    dtype = "f" if values.dtype.kind == "f" else ("b" if values.dtype.kind == "b" else "i")
    rows = [
        {"incarnation_id": incarnation_id, "stream": stream, "key": key, **row}
        for row in hist.split_into_chunks(0, np.asarray(steps, dtype=np.int64), values, dtype)
    ]
    with store.engine.begin() as conn:
        upsert(conn, history_chunks, rows)


#: The store backends a contract runs on; PostgreSQL tests carry the `postgres` marker.
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@contextmanager
def fresh_url(backend: str, directory: Path) -> Iterator[str]:
    """A fresh, empty store URL on `backend`: a SQLite file in `directory`, or a PostgreSQL schema
    dropped afterwards. Skips the test, saying why, when PostgreSQL does not answer."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'store.db'}"
        return
    if not pg_available():
        pytest.skip(f"PostgreSQL is not reachable at {PG_URL} (start it to run the PostgreSQL half of this test)")
    with pg_schema_url() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def any_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store URL: a SQLite file, or a PostgreSQL schema dropped after the test.

    Use it in a test module with `any_store_url = store_factory.any_store_url`.
    """
    with fresh_url(request.param, tmp_path / "store") as url:
        yield url
