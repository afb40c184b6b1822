"""`Store`: the one interface to persistence, over SQLite or PostgreSQL."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from branchline.errors import RunNotFoundError, StoreError, UsageError
from branchline.rejects import Rejected, isolate, rejection
from branchline.runspec import RunSpec, RunStart
from branchline.store import apply as apply_mod
from branchline.store import artifacts as arts
from branchline.store import catalog, charts, media, reads, stops, streams, writes
from branchline.store import schema as tables
from branchline.store.auth import AuthStoreMixin
from branchline.store.engine import ensure_schema, make_engine, normalize_url
from branchline.store.interface import ChartOptions, ListQuery, Series, StepRange, StoreInterface
from branchline.store.leases import Lease, open_lease
from branchline.store.lineage import segments_for
from branchline.store.overview import Overview, read_overviews
from branchline.store.pending_uploads import PendingUploadStoreMixin
from branchline.store.reads import RunView
from branchline.store.schema import incarnations, projects, runs
from branchline.store.workspaces import WorkspaceStoreMixin
from branchline.vocab import RunState

__all__ = ["Store", "open_store", "DEFAULT_CRASH_TIMEOUT"]

#: Seconds without a heartbeat after which a run on another host reads as crashed.
DEFAULT_CRASH_TIMEOUT = 300.0


def filters_module() -> Any:
    """The filter compiler, imported on first use (it loads PostgreSQL's dialect for JSONB)."""
    from branchline.store import filters

    return filters


def open_store(
    url: str, *, create: bool = True, crash_timeout: float = DEFAULT_CRASH_TIMEOUT, files_dir: Path | None = None
) -> Store:
    """Open the store at `url` (`sqlite:///…` or `postgresql://…`), creating an empty one.

    `files_dir` is where run files' contents live (`<branchline_dir>/files` for the SDK's runs).
    """
    return Store(url, create=create, crash_timeout=crash_timeout, files_dir=files_dir)


class Store(AuthStoreMixin, WorkspaceStoreMixin, PendingUploadStoreMixin):
    """Runs, their incarnations and history. Safe to share between threads; one per process.

    Implements every role of store/interface.py (`StoreInterface`); callers type against a role.
    Users, API keys, teams and project visibility come from `AuthStoreMixin` (store/auth.py), saved
    workspace layouts from `WorkspaceStoreMixin` (store/workspaces.py), W&B artifact uploads in
    flight from `PendingUploadStoreMixin` (store/pending_uploads.py).
    """

    def __init__(
        self,
        url: str,
        *,
        create: bool = True,
        crash_timeout: float = DEFAULT_CRASH_TIMEOUT,
        files_dir: Path | None = None,
    ) -> None:
        self.url = normalize_url(url)
        self.files_dir = files_dir
        self.crash_timeout = crash_timeout
        #: Seconds a stop request may take before the run is marked killed (store/stops.py).
        self.stop_timeout = stops.DEFAULT_STOP_TIMEOUT
        self.engine = make_engine(self.url)
        try:
            ensure_schema(self.engine, url, create=create)
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise StoreError(
                f"Could not open the store at {url}: {exc.orig if hasattr(exc, 'orig') else exc}. "
                "Check the path or URL; a damaged SQLite file can be moved away to start a fresh store."
            ) from exc

    def close(self) -> None:
        if self.engine.dialect.name == "sqlite":
            # Fold the WAL back into the database so a finished store is one compact file.
            try:
                with self.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            except Exception:
                pass
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.execution_options(branchline_write=True).begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    # -- writing ---------------------------------------------------------------------------
    def begin_run(self, spec: RunSpec) -> RunStart:
        with self._write() as conn:
            return writes.begin_run(conn, spec, now=time.time(), crash_timeout=self.crash_timeout)

    def apply(
        self, session_id: str, records: Sequence[Sequence[Any]], *, rejected: list[Rejected] | None = None
    ) -> int:
        """Apply a batch of records; returns the session's highest applied sequence.

        A record that cannot be stored (a value no column or JSON field holds) is set aside: the
        rest of the batch is stored, the session moves past it, and it is added to `rejected`
        (logged when no list is given). Database errors propagate; the batch is retried later.
        """

        def apply_part(part: list[Any]) -> int:
            with self._write() as conn:
                return apply_mod.apply_records(conn, session_id, part, now=time.time())

        def reject(record: Any, exc: BaseException) -> int:
            found = rejection(record, exc)
            if rejected is None:
                logging.getLogger("branchline.store").warning("%s", found.message(session_id))
            else:
                rejected.append(found)
            with self._write() as conn:
                return apply_mod.skip_records(conn, session_id, found.sequence)

        return isolate(apply_part, list(records), bad=apply_mod.record_at_fault, rejected=reject)

    def stream_session(self, incarnation_id: str, stream: str) -> str:
        """A writer session of the incarnation for one named stream (store/streams.py)."""
        with self._write() as conn:
            return streams.stream_session(conn, incarnation_id, stream, time.time())

    def set_console_lines(self, incarnation_id: str, first: int, lines: Sequence[Sequence[Any]]) -> None:
        """Console lines `[stream, timestamp, text]` written at line numbers from `first` on."""
        with self._write() as conn:
            streams.console_at(conn, incarnation_id, first, lines)

    def applied_seq(self, session_id: str) -> int | None:
        with self._read() as conn:
            found = conn.execute(
                select(tables.writer_sessions.c.applied_seq).where(tables.writer_sessions.c.id == session_id)
            ).scalar()
        return None if found is None else int(found)

    def heartbeat(self, incarnation_id: str) -> bool:
        with self._write() as conn:
            return writes.heartbeat(conn, incarnation_id, time.time())

    def mark_crashed(self, incarnation_id: str, session_id: str | None = None) -> None:
        """Mark a running incarnation crashed. Given the dead writer's session, only if no later
        session (a resume) has taken the incarnation over meanwhile."""
        with self._write() as conn:
            if session_id is not None and writes.resumed_since(conn, incarnation_id, session_id):
                return
            conn.execute(
                update(incarnations)
                .where(
                    incarnations.c.id == incarnation_id,
                    incarnations.c.state.in_([RunState.RUNNING.value, RunState.PREEMPTING.value]),
                )
                .values(state=RunState.CRASHED.value)
            )

    def reap_stale(self) -> int:
        """Mark runs whose writer is gone as crashed, and runs whose stop is overdue as killed;
        a cheap read unless some are."""
        with self._read() as conn:
            now = time.time()
            if not writes.stale_incarnations(conn, now, self.crash_timeout) and not stops.overdue_stops(
                conn, now, self.stop_timeout
            ):
                return 0
        with self._write() as conn:
            # Stops first: a run asked to stop that is gone or silent ends killed, not crashed.
            now = time.time()
            killed = stops.reap_overdue_stops(conn, now, self.stop_timeout)
            killed += stops.end_dead_stops(conn, writes.stale_incarnations(conn, now, self.crash_timeout), now)
            return killed + writes.reap_stale(conn, now, self.crash_timeout)

    def mark_killed(self, incarnation_id: str, note: str) -> bool:
        """End a live incarnation as `killed` with `note` (store/stops.py); whether it was live."""
        with self._write() as conn:
            return stops.mark_killed(conn, incarnation_id, note, time.time())

    def lease(self, name: str) -> Lease:
        """The lease on background job `name`, held by one process at a time (store/leases.py)."""
        return open_lease(self.engine, name)

    # -- runs ---------------------------------------------------------------------------------
    def get_run(self, entity: str, project: str, run_id: str) -> RunView | None:
        self.reap_stale()
        with self._read() as conn:
            row = conn.execute(
                reads.run_select().where(
                    projects.c.entity == entity, projects.c.name == project, runs.c.run_id == run_id
                )
            ).first()
            return None if row is None else reads.to_view(conn, row)

    def require_run(self, entity: str, project: str, run_id: str) -> RunView:
        view = self.get_run(entity, project, run_id)
        if view is None:
            raise RunNotFoundError(f"Run {entity}/{project}/{run_id} not found.")
        return view

    def get_incarnation(self, incarnation_id: str) -> RunView | None:
        with self._read() as conn:
            row = conn.execute(reads.run_select(current_only=False).where(incarnations.c.id == incarnation_id)).first()
            return None if row is None else reads.to_view(conn, row)

    def list_runs(self, entity: str, project: str, **query: Unpack[ListQuery]) -> list[RunView]:
        """Runs matching `filters`, ordered by `order` (default "+created_at"), paged by limit/offset."""
        self.reap_stale()
        stmt = reads.run_select().where(projects.c.entity == entity, projects.c.name == project)
        filters, limit, offset = query.get("filters"), query.get("limit"), query.get("offset", 0)
        if filters:
            stmt = stmt.where(filters_module().compile_filter(filters, self.engine.dialect.name))
        order = query.get("order", "+created_at")
        stmt = stmt.order_by(*filters_module().compile_order(order, self.engine.dialect.name))
        if limit is not None:
            stmt = stmt.limit(limit)
        if offset:
            stmt = stmt.offset(offset)
        with self._read() as conn:
            return [reads.to_view(conn, row) for row in conn.execute(stmt)]

    def count_runs(self, entity: str, project: str, *, filters: dict[str, Any] | None = None) -> int:
        stmt = reads.run_select().where(projects.c.entity == entity, projects.c.name == project)
        if filters:
            stmt = stmt.where(filters_module().compile_filter(filters, self.engine.dialect.name))
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(stmt.subquery())).scalar_one())

    def archived(self, run: RunView) -> list[RunView]:
        """The archived incarnations of a run, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                reads.run_select(current_only=False)
                .where(runs.c.pk == run.pk, incarnations.c.archived.is_(True))
                .order_by(incarnations.c.ordinal)
            ).all()
            return [reads.to_view(conn, row) for row in rows]

    def forks(self, run: RunView) -> list[RunView]:
        """Runs forked from any incarnation of `run`."""
        with self._read() as conn:
            own = select(incarnations.c.id).where(incarnations.c.run_pk == run.pk)
            rows = conn.execute(
                reads.run_select()
                .where(incarnations.c.parent_id.in_(own), incarnations.c.branch_kind == "fork")
                .order_by(runs.c.created_at)
            ).all()
            return [reads.to_view(conn, row) for row in rows]

    def update_run(self, run: RunView, **fields: Any) -> None:
        """Edit name, notes, tags, group, job_type, private (on the run) and config, summary (on its incarnation)."""
        columns = {
            "name": "name",
            "notes": "notes",
            "tags": "tags",
            "group": "run_group",
            "job_type": "job_type",
            "private": "private",
        }
        run_values = {columns[k]: v for k, v in fields.items() if k in columns}
        inc_values = {k: v for k, v in fields.items() if k in ("config", "summary")}
        unknown = set(fields) - set(columns) - set(inc_values)
        if unknown:
            raise UsageError(f"Cannot update {', '.join(sorted(unknown))} on a run.")
        if run.archived:
            raise UsageError(f"{run.path} incarnation {run.incarnation_id} is archived and read-only.")
        with self._write() as conn:
            if run_values:
                conn.execute(update(runs).where(runs.c.pk == run.pk).values(updated_at=time.time(), **run_values))
            if inc_values:
                conn.execute(update(incarnations).where(incarnations.c.id == run.incarnation_id).values(**inc_values))

    def request_stop(self, run: RunView) -> None:
        with self._write() as conn:
            stops.record_stop_request(conn, run.pk, run.incarnation_id, time.time())

    def move_run(self, run: RunView, project: str, entity: str | None = None) -> None:
        target_entity = entity or run.entity
        with self._write() as conn:
            project_id = writes.ensure_project(conn, target_entity, project, time.time())
            clash = conn.execute(
                select(runs.c.pk).where(runs.c.project_id == project_id, runs.c.run_id == run.run_id)
            ).first()
            if clash is not None:
                raise UsageError(f"Project {target_entity}/{project} already has a run {run.run_id!r}.")
            conn.execute(update(runs).where(runs.c.pk == run.pk).values(project_id=project_id, updated_at=time.time()))

    def delete_run(self, run: RunView) -> None:
        """Delete a run and its data. Incarnations that forks still read are detached, not deleted."""
        with self._write() as conn:
            own = [row.id for row in conn.execute(select(incarnations.c.id).where(incarnations.c.run_pk == run.pk))]
            conn.execute(
                update(incarnations)
                .where(incarnations.c.run_pk == run.pk)
                .values(run_pk=None, detached_path=run.path, archived=True)
            )
            conn.execute(delete(runs).where(runs.c.pk == run.pk))
            self._collect_garbage(conn, own)
        self._reclaim_space()

    def _reclaim_space(self) -> None:
        """Give the pages freed by a delete back to the file system (SQLite, auto_vacuum=INCREMENTAL).

        Python's sqlite3 steps `PRAGMA incremental_vacuum` once per execute(), which frees a single
        page; a script is stepped to completion. It must run outside a transaction, hence here.
        """
        if self.engine.dialect.name != "sqlite":
            return
        raw = self.engine.raw_connection()
        try:
            raw.driver_connection.executescript("PRAGMA incremental_vacuum;")  # type: ignore[union-attr]
        finally:
            raw.close()

    def _collect_garbage(self, conn: Connection, candidates: list[str]) -> None:
        """Delete detached incarnations nothing reads any more, children before parents."""
        pending = list(candidates)
        while pending:
            inc_id = pending.pop()
            row = conn.execute(
                select(incarnations.c.run_pk, incarnations.c.parent_id).where(incarnations.c.id == inc_id)
            ).first()
            if row is None or row.run_pk is not None:
                continue
            if conn.execute(select(incarnations.c.id).where(incarnations.c.parent_id == inc_id).limit(1)).first():
                continue
            for table in (
                tables.history_chunks,
                tables.history_values,
                tables.console_lines,
                tables.run_files,
                tables.alerts,
                tables.writer_sessions,
            ):
                conn.execute(delete(table).where(table.c.incarnation_id == inc_id))
            conn.execute(delete(incarnations).where(incarnations.c.id == inc_id))
            if row.parent_id is not None:
                pending.append(row.parent_id)

    # -- history ------------------------------------------------------------------------------
    def read_series(self, incarnation_id: str, key: str, **bounds: Unpack[StepRange]) -> Series:
        with self._read() as conn:
            return reads.read_series(conn, incarnation_id, key, **bounds)

    def read_series_overviews(
        self, incarnation_ids: Sequence[str], key: str, *, points: int, **bounds: Unpack[StepRange]
    ) -> dict[str, Overview]:
        """Many runs' series of `key`, reduced to what a chart of `points` step buckets needs."""
        with self._read() as conn:
            return read_overviews(conn, list(incarnation_ids), key, points=points, **bounds)

    def chart_series(
        self, incarnation_ids: Sequence[str], keys: Sequence[str], **options: Unpack[ChartOptions]
    ) -> list[charts.ChartSeries]:
        """Every run's series of every key against `x` (default `_step`), reduced to at most
        2*buckets+2 points each, run by run and keys in order (store/charts.py)."""
        with self._read() as conn:
            return charts.chart_series(conn, incarnation_ids, keys, **options)

    def read_objects(self, incarnation_id: str, key: str, **bounds: Unpack[StepRange]) -> list[tuple[int, Any]]:
        with self._read() as conn:
            return reads.read_objects(conn, incarnation_id, key, **bounds)

    def history_keys(self, incarnation_id: str, *, stream: int = 0) -> dict[str, dict[str, Any]]:
        with self._read() as conn:
            return reads.history_keys(conn, incarnation_id, stream=stream)

    def history_keys_many(
        self, incarnation_ids: Sequence[str], *, stream: int = 0
    ) -> dict[str, dict[str, dict[str, Any]]]:
        """`history_keys` of many incarnations in a few queries."""
        with self._read() as conn:
            return reads.history_keys_many(conn, list(dict.fromkeys(incarnation_ids)), stream=stream)

    def lineage(self, incarnation_id: str) -> list[tuple[str, int]]:
        with self._read() as conn:
            return [(s.incarnation_id, s.max_step) for s in segments_for(conn, incarnation_id)]

    def media_types(self, incarnation_ids: Sequence[str], *, stream: int = 0) -> dict[str, dict[str, str]]:
        """Per incarnation: each media key's type (`image-file`, `histogram`, `plot/<preset>`, ...)."""
        with self._read() as conn:
            return media.media_types(conn, list(dict.fromkeys(incarnation_ids)), stream=stream)

    # -- projects and telemetry ------------------------------------------------------------------
    def list_projects(self, entity: str | None = None) -> list[dict[str, Any]]:
        with self._read() as conn:
            return reads.project_rows(conn, entity)

    def project_activity(
        self, entity: str | None = None, *, private_runs_of: Collection[str] | None = None
    ) -> list[dict[str, Any]]:
        """Projects with run counts, running runs and last activity, for the web app.

        With `private_runs_of` (the caller's entities) a private run counts only in those entities' projects.
        """
        with self._read() as conn:
            return catalog.project_activity(conn, entity, private_runs_of=private_runs_of)

    def state_counts(self, entity: str, project: str, *, include_private: bool = True) -> dict[str, int]:
        """How many of the project's runs are in each state (private ones only if `include_private`)."""
        with self._read() as conn:
            return catalog.state_counts(conn, entity, project, include_private=include_private)

    def project_columns(
        self, entity: str, project: str, *, sample: int = 2000, cap: int = 300, include_private: bool = True
    ) -> dict[str, list[str]]:
        """Config and summary keys of the project's latest `sample` runs, most common first."""
        with self._read() as conn:
            return catalog.project_columns(
                conn, entity, project, sample=sample, cap=cap, include_private=include_private
            )

    def incarnation_owners(self, incarnation_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """`incarnation_owner` of many incarnations at once (unknown ones are absent)."""
        with self._read() as conn:
            return catalog.incarnation_owners(conn, list(incarnation_ids))

    def console_lines(self, incarnation_id: str) -> list[dict[str, Any]]:
        with self._read() as conn:
            return reads.console_text(conn, incarnation_id)

    def files(self, incarnation_id: str) -> list[dict[str, Any]]:
        with self._read() as conn:
            return reads.file_rows(conn, incarnation_id)

    def _file_location(self, incarnation_id: str, path: str) -> Path:
        if self.files_dir is None:
            raise UsageError("This store was opened without a files directory; run file contents are not here.")
        base = (self.files_dir / incarnation_id).resolve()
        target = (base / path).resolve()
        if base not in target.parents:
            raise UsageError(f"{path!r} is not a path inside the run's files.")
        return target

    def read_file(self, incarnation_id: str, path: str) -> bytes:
        """The stored content of a run file."""
        location = self._file_location(incarnation_id, path)
        if not location.is_file():
            raise UsageError(f"The content of {path!r} is not stored here (expected at {location}).")
        return location.read_bytes()

    def add_run_file(self, incarnation_id: str, path: str, size: int, sha256: str) -> None:
        """List a file with an incarnation (its content is stored elsewhere, e.g. a server's blobs)."""
        row = {"incarnation_id": incarnation_id, "path": path, "size": size, "sha256": sha256}
        with self._write() as conn:
            writes.upsert(conn, tables.run_files, [{**row, "updated_at": time.time()}])

    def write_file(self, incarnation_id: str, path: str, data: bytes) -> None:
        """Store a run file's content and list it with the run (after the fact, like `upload_file`)."""
        location = self._file_location(incarnation_id, path)
        location.parent.mkdir(parents=True, exist_ok=True)
        partial = location.with_name(location.name + ".partial")
        partial.write_bytes(data)
        partial.replace(location)
        self.add_run_file(incarnation_id, path, len(data), hashlib.sha256(data).hexdigest())

    def delete_file(self, incarnation_id: str, path: str) -> dict[str, Any] | None:
        """Remove a run file: its row, and its content under `files_dir` (that copy is the
        incarnation's own). Returns the removed row plus `shared`: whether another run file or an
        artifact entry still names its sha256, so a blob store must keep that content; None when
        the incarnation has no such file."""
        rf = tables.run_files
        where = (rf.c.incarnation_id == incarnation_id, rf.c.path == path)
        with self._write() as conn:
            found = conn.execute(select(rf.c.path, rf.c.size, rf.c.sha256, rf.c.updated_at).where(*where)).first()
            if found is None:
                return None
            conn.execute(delete(rf).where(*where))
            sha = str(found.sha256)
            shared = bool(arts.referenced_blobs(conn, [sha]))  # another run file or an artifact
        if self.files_dir is not None:
            # A listed path that would point outside the run's directory has no copy here.
            with contextlib.suppress(UsageError):
                self._file_location(incarnation_id, path).unlink(missing_ok=True)
        return {**found._asdict(), "shared": shared}

    def alerts(self, incarnation_id: str) -> list[dict[str, Any]]:
        with self._read() as conn:
            return reads.alert_rows(conn, incarnation_id)

    # -- artifacts (logic in store/artifacts.py) ---------------------------------------------------
    def commit_artifact(self, **fields: Any) -> tuple[arts.VersionRow, bool]:
        """Create or reuse an artifact version in one transaction; see `artifacts.commit_version`."""
        with self._write() as conn:
            return arts.commit_version(conn, now=time.time(), **fields)

    def resolve_artifact(self, entity: str, project: str, name: str, spec: str) -> arts.VersionRow | None:
        with self._read() as conn:
            return arts.resolve_version(conn, entity, project, name, spec)

    def get_artifact(self, version_id: str) -> arts.VersionRow | None:
        with self._read() as conn:
            return arts.get_version(conn, version_id)

    def artifact_versions(self, entity: str, project: str, name: str) -> list[arts.VersionRow]:
        with self._read() as conn:
            return arts.list_versions(conn, entity, project, name)

    def artifact_collections(self, entity: str, project: str, type: str | None = None) -> list[dict[str, Any]]:
        with self._read() as conn:
            return arts.list_collections(conn, entity, project, type)

    def artifact_entries(self, version_id: str) -> list[arts.EntryRow]:
        with self._read() as conn:
            return arts.version_entries(conn, version_id)

    def use_artifact(self, version_id: str, incarnation_id: str) -> None:
        with self._write() as conn:
            arts.record_use(conn, version_id, incarnation_id, arts.USED, time.time())

    def set_artifact_aliases(self, version_id: str, aliases: Sequence[str]) -> None:
        with self._write() as conn:
            arts.set_aliases(conn, version_id, aliases)

    def update_artifact(self, version_id: str, *, description: str | None, metadata: dict[str, Any]) -> None:
        with self._write() as conn:
            arts.update_version(conn, version_id, description=description, metadata=metadata, now=time.time())

    def delete_artifact(self, version_id: str, *, delete_aliases: bool = False) -> list[str]:
        with self._write() as conn:
            return arts.delete_version(conn, version_id, delete_aliases=delete_aliases)

    def run_artifacts(self, incarnation_id: str, role: str) -> list[arts.VersionRow]:
        """Versions an incarnation logged (role "logged") or used (role "used")."""
        with self._read() as conn:
            return arts.run_versions(conn, incarnation_id, role)

    def run_artifact_summaries(self, incarnation_id: str) -> dict[str, list[dict[str, Any]]]:
        """The versions an incarnation logged and used, with aliases, as the web app lists them."""
        with self._read() as conn:
            return catalog.run_artifact_summaries(conn, incarnation_id)

    def blob_in_project(self, entity: str, project: str, digest: str) -> bool:
        """Whether a version or a run file of `entity/project` names blob `digest`."""
        with self._read() as conn:
            return catalog.blob_in_project(conn, entity, project, digest)

    def artifact_users(self, version_id: str, role: str) -> list[str]:
        with self._read() as conn:
            return arts.version_users(conn, version_id, role)

    def referenced_blobs(self, digests: Sequence[str]) -> set[str]:
        with self._read() as conn:
            return arts.referenced_blobs(conn, digests)


if TYPE_CHECKING:

    def _implements_the_interface(store: Store) -> StoreInterface:
        return store  # mypy checks here that `Store` has every method of every role, with matching types
