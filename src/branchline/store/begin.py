"""Starting a run in the store: new, resumed, forked (`fork_from`) or rewound (`resume_from`).

`begin_run` is idempotent on the writer session: a replayed header answers the run it started.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.engine import Row

from branchline.errors import RunNotFoundError, UsageError
from branchline.runspec import RunSpec, RunStart
from branchline.store.lineage import derive_summary, segments_for
from branchline.store.liveness import incarnation_row, is_alive
from branchline.store.schema import incarnations, projects, runs, writer_sessions
from branchline.store.sql import ensure_project
from branchline.store.stops import without_stop
from branchline.vocab import RunState, random_run_name

__all__ = ["begin_run", "forked_from_info"]


def begin_run(conn: Connection, spec: RunSpec, *, now: float, crash_timeout: float) -> RunStart:
    """Create, resume, fork or rewind a run as `spec` asks; idempotent on its session id."""
    session = conn.execute(
        select(writer_sessions.c.incarnation_id).where(writer_sessions.c.id == spec.session_id)
    ).first()
    if session is not None:  # a replayed header: the run was started already
        return _start_for(conn, session.incarnation_id, resumed=spec.resume is not None, warnings=[])
    begin = _Begin(conn, spec, now, crash_timeout)
    if spec.fork_from is not None:
        return begin.fork()
    if spec.resume_from is not None:
        return begin.rewind()
    if begin.existing is not None:
        return begin.resume()
    return begin.create()


class _Begin:
    """One `begin_run` call: the project, the run already under that id, and warnings to report."""

    def __init__(self, conn: Connection, spec: RunSpec, now: float, crash_timeout: float) -> None:
        self.conn = conn
        self.spec = spec
        self.now = now
        self.crash_timeout = crash_timeout
        self.where = f"{spec.entity}/{spec.project}"
        self.project_id = ensure_project(conn, spec.entity, spec.project, now)
        self.existing = _find_run(conn, self.project_id, spec.run_id)
        self.warnings: list[str] = []

    def started(self, inc_id: str, *, resumed: bool = False) -> RunStart:
        _ensure_session(self.conn, self.spec, inc_id, self.now)
        return _start_for(self.conn, inc_id, resumed=resumed, warnings=self.warnings)

    def create(self) -> RunStart:
        if self.spec.resume == "must":
            raise UsageError(
                f"resume='must' but no run {self.spec.run_id!r} exists in {self.where}; "
                "use resume='allow' to create it when missing."
            )
        pk = _create_run(self.conn, self.spec, self.project_id, self.now)
        self.conn.execute(incarnations.insert().values(**_new_incarnation_row(self.spec, self.now, run_pk=pk)))
        return self.started(self.spec.incarnation_id)

    def fork(self) -> RunStart:
        spec = self.spec
        source = _find_run(self.conn, self.project_id, str(spec.fork_from))
        if source is None:
            raise RunNotFoundError(f"fork_from: no run {spec.fork_from!r} in project {self.where}.")
        if self.existing is not None:
            raise UsageError(f"Run {spec.run_id!r} already exists in {self.where}; a fork needs a new id.")
        src = incarnation_row(self.conn, source.current_incarnation)
        step = self.branch_step(src, "fork_from", spec.fork_from, "the fork inherits its whole history")
        pk = _create_run(self.conn, spec, self.project_id, self.now)
        self.insert_branch(src, step, run_pk=pk, branch_kind="fork")
        return self.started(spec.incarnation_id)

    def rewind(self) -> RunStart:
        spec = self.spec
        if self.existing is None:
            raise RunNotFoundError(f"resume_from: no run {spec.resume_from!r} in project {self.where}.")
        cur = incarnation_row(self.conn, self.existing.current_incarnation)
        if is_alive(cur, self.now, self.crash_timeout):
            raise UsageError(
                f"Run {spec.run_id!r} is still running (pid {cur.pid} on {cur.host or 'unknown host'}); "
                "finish it, or wait until it has crashed, before rewinding it."
            )
        step = self.branch_step(cur, "resume_from", spec.run_id, "the whole history is kept")
        self.conn.execute(
            update(incarnations).where(incarnations.c.id == cur.id).values(archived=True, archived_at=self.now)
        )
        self.insert_branch(
            cur,
            step,
            run_pk=self.existing.pk,
            branch_kind="rewind",
            ordinal=int(cur.ordinal) + 1,
            run_metadata=spec.metadata or without_stop(cur.run_metadata),
        )
        _update_run_fields(self.conn, self.existing.pk, spec, self.now, current_incarnation=spec.incarnation_id)
        return self.started(spec.incarnation_id)

    def resume(self) -> RunStart:
        spec, existing = self.spec, self.existing
        assert existing is not None
        if spec.resume in (None, "never"):
            hint = (
                "Pass resume='allow' (or 'must') to continue it, "
                f"resume_from='{spec.run_id}?_step=N' to rewind it, or choose another id."
            )
            if spec.resume == "never":
                raise UsageError(f"resume='never' but run {spec.run_id!r} already exists in {self.where}. {hint}")
            raise UsageError(f"Run {spec.run_id!r} already exists in {self.where}. {hint}")
        cur = incarnation_row(self.conn, existing.current_incarnation)
        if is_alive(cur, self.now, self.crash_timeout):
            raise UsageError(
                f"Run {spec.run_id!r} is still running (pid {cur.pid}); it cannot be resumed twice at once."
            )
        # The time since the run last ended is a pause: Runtime (wall clock) counts it, Duration does
        # not. The SDK clock continues from the runtime including it, so `_runtime` stays wall clock.
        ended = cur.finished_at if cur.finished_at is not None else cur.heartbeat_at
        pause = max(0.0, self.now - float(ended))
        self.conn.execute(
            update(incarnations)
            .where(incarnations.c.id == cur.id)
            .values(
                state=RunState.RUNNING.value,
                exit_code=None,
                finished_at=None,
                runtime=float(cur.runtime) + pause,
                paused=float(cur.paused) + pause,
                heartbeat_at=self.now,
                pid=spec.pid,
                host=spec.host,
                config={**dict(cur.config), **spec.config},
            )
        )
        _update_run_fields(self.conn, existing.pk, spec, self.now)
        return self.started(cur.id, resumed=True)

    def branch_step(self, parent: Any, argument: str, name: Any, inherits: str) -> int:
        """The step a fork or rewind branches at; past the parent's last step is allowed, with a warning."""
        step = int(self.spec.branch_step or 0)
        if step > parent.last_step:
            self.warnings.append(
                f"{argument} step {step} is past the last step ({parent.last_step}) of run {name!r}; {inherits}."
            )
        return step

    def insert_branch(self, parent: Any, step: int, **fields: Any) -> None:
        """The new incarnation of a fork or rewind: it sees `parent` up to `step`, and its summary."""
        derived = derive_summary(self.conn, segments_for(self.conn, parent.id, step), dict(parent.metrics))
        row = _new_incarnation_row(
            self.spec,
            self.now,
            parent_id=parent.id,
            parent_step=step,
            starting_step=step + 1,
            last_step=step,
            config={**dict(parent.config), **self.spec.config},
            summary=derived.summary,
            metrics=derived.rules_json(),
            **fields,
        )
        self.conn.execute(incarnations.insert().values(**row))


def _find_run(conn: Connection, project_id: int, run_id: str) -> Row[Any] | None:
    return conn.execute(select(runs).where(runs.c.project_id == project_id, runs.c.run_id == run_id)).first()


def _new_incarnation_row(spec: RunSpec, now: float, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": spec.incarnation_id,
        "ordinal": 1,
        "parent_id": None,
        "parent_step": None,
        "branch_kind": None,
        "archived": False,
        "state": RunState.RUNNING.value,
        "created_at": now,
        "started_at": spec.started_at or now,
        "heartbeat_at": now,
        "pid": spec.pid,
        "host": spec.host,
        "starting_step": 0,
        "last_step": -1,
        "runtime": 0.0,
        "config": spec.config,
        "summary": {},
        "metrics": {},
        "run_metadata": spec.metadata,
    }
    row.update(fields)
    return row


def _create_run(conn: Connection, spec: RunSpec, project_id: int, now: float) -> int:
    count = conn.execute(select(func.count()).select_from(runs).where(runs.c.project_id == project_id)).scalar_one()
    result = conn.execute(
        runs.insert().values(
            project_id=project_id,
            run_id=spec.run_id,
            current_incarnation=spec.incarnation_id,
            name=spec.name or random_run_name(int(count) + 1),
            notes=spec.notes or "",
            tags=list(spec.tags or []),
            run_group=spec.group or "",
            job_type=spec.job_type or "",
            host=spec.host,
            username=spec.username,
            created_at=now,
            updated_at=now,
            stop_requested=False,
        )
    )
    pk = result.inserted_primary_key
    assert pk is not None
    return int(pk[0])


def _update_run_fields(conn: Connection, pk: int, spec: RunSpec, now: float, **extra: Any) -> None:
    # A resumed or rewound run starts afresh: an earlier stop request is not for it.
    values: dict[str, Any] = {"updated_at": now, "stop_requested": False, **extra}
    for name, column in (("name", "name"), ("notes", "notes"), ("group", "run_group"), ("job_type", "job_type")):
        if getattr(spec, name) is not None:
            values[column] = getattr(spec, name)
    if spec.tags is not None:
        values["tags"] = list(spec.tags)
    conn.execute(update(runs).where(runs.c.pk == pk).values(**values))


def forked_from_info(conn: Connection, inc: Row[Any]) -> dict[str, Any] | None:
    """Where an incarnation branched from, as `run.forked_from` reports it."""
    if inc.parent_id is None:
        return None
    parent = incarnation_row(conn, inc.parent_id)
    path = parent.detached_path
    run_id = path.rsplit("/", 1)[-1] if path else None
    if parent.run_pk is not None:
        row = conn.execute(
            select(runs.c.run_id, projects.c.entity, projects.c.name)
            .join(projects, projects.c.id == runs.c.project_id)
            .where(runs.c.pk == parent.run_pk)
        ).first()
        if row is not None:
            run_id, path = row.run_id, f"{row.entity}/{row.name}/{row.run_id}"
    return {
        "run_id": run_id,
        "path": path,
        "step": inc.parent_step,
        "kind": inc.branch_kind,
        "incarnation_id": parent.id,
        "archived": bool(parent.archived),
        "deleted": parent.run_pk is None,
    }


def _start_for(conn: Connection, inc_id: str, *, resumed: bool, warnings: list[str]) -> RunStart:
    inc = incarnation_row(conn, inc_id)
    run = conn.execute(
        select(runs, projects.c.entity, projects.c.name.label("project"))
        .join(projects, projects.c.id == runs.c.project_id)
        .where(runs.c.pk == inc.run_pk)
    ).one()
    return RunStart(
        entity=run.entity,
        project=run.project,
        run_id=run.run_id,
        incarnation_id=inc.id,
        name=run.name,
        notes=run.notes,
        tags=list(run.tags),
        group=run.run_group,
        job_type=run.job_type,
        config=dict(inc.config),
        summary=dict(inc.summary),
        rules=dict(inc.metrics),
        starting_step=int(inc.last_step) + 1 if resumed else int(inc.starting_step),
        runtime_offset=float(inc.runtime) if resumed else 0.0,
        resumed=resumed,
        forked_from=forked_from_info(conn, inc),
        warnings=warnings,
    )


def _ensure_session(conn: Connection, spec: RunSpec, inc_id: str, now: float) -> None:
    exists = conn.execute(select(writer_sessions.c.id).where(writer_sessions.c.id == spec.session_id)).first()
    if exists is None:
        conn.execute(
            writer_sessions.insert().values(id=spec.session_id, incarnation_id=inc_id, applied_seq=0, started_at=now)
        )
