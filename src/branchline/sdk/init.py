"""`branchline.init()`: resolve settings, start (or resume, fork, rewind) a run, wire it up."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from branchline.errors import UsageError
from branchline.runspec import RunSpec, RunStart
from branchline.sdk import globals as run_globals
from branchline.sdk.branching import plan_branch
from branchline.sdk.config import config_dict_from
from branchline.sdk.fast_start import fast_start
from branchline.sdk.journal import JournalWriter
from branchline.sdk.lifecycle import WRITER_KEY_ENV, RunResources, WriterProcess, install_hooks, registry
from branchline.sdk.run import Run, validate_tags
from branchline.sdk.terminal import Terminal
from branchline.settings import Settings
from branchline.vocab import RecordKind, generate_incarnation_id, generate_run_id, validate_project_name

if TYPE_CHECKING:
    from branchline.store import Store

__all__ = ["init"]


def init(
    project: str | None = None,
    *,
    entity: str | None = None,
    config: Any = None,
    id: str | None = None,
    name: str | None = None,
    notes: str | None = None,
    tags: Any = None,
    group: str | None = None,
    job_type: str | None = None,
    dir: str | os.PathLike[str] | None = None,
    mode: str | None = None,
    resume: bool | str | None = None,
    resume_from: str | None = None,
    fork_from: str | None = None,
    reinit: bool | str | None = None,
    settings: Settings | dict[str, Any] | None = None,
    save_code: bool | None = None,
    allow_val_change: bool | None = None,
    config_include_keys: list[str] | None = None,
    config_exclude_keys: list[str] | None = None,
    force: bool | None = None,
    sync_tensorboard: bool | None = None,
    tensorboard: bool | None = None,
    monitor_gym: bool | None = None,
) -> Run:
    """Start a run and return it; it becomes `branchline.run`.

    The run is stored in the embedded store under `<dir>/branchline/` unless a server is
    configured. `fork_from="<run_id>?_step=N"` starts a new run that sees the source's history up
    to step N; `resume_from="<run_id>?_step=N"` rewinds a run to step N, archiving what it had.
    """
    if resume is True:
        resume = "auto"
    elif resume is False:
        resume = None
    explicit = {
        "project": project,
        "entity": entity,
        "run_id": id,
        "run_name": name,
        "run_notes": notes,
        "run_group": group,
        "run_job_type": job_type,
        "root_dir": os.fspath(dir) if dir is not None else None,
        "mode": mode,
        "resume": resume,
        "resume_from": resume_from,
        "fork_from": fork_from,
        "reinit": reinit,
        "save_code": save_code,
    }
    resolved = Settings.resolve(explicit, settings)
    if tags is not None:
        resolved.run_tags = validate_tags(tags)
    elif resolved.run_tags is not None:
        resolved.run_tags = validate_tags(resolved.run_tags)

    previous = _apply_reinit(resolved)
    if previous is not None:
        Terminal(resolved.quiet).log(
            f"A run ({previous.id}) is already active in this process; returning it. "
            "Pass reinit='finish_previous' or 'create_new' to start another."
        )
        return previous

    config_values = _filtered_config(config, config_include_keys, config_exclude_keys)
    spec, moment_kind = _build_spec(resolved, config_values)
    terminal = Terminal(resolved.quiet)
    install_hooks()
    run = _start(resolved, spec, moment_kind, terminal)
    with registry.lock:
        registry.runs.append(run)
    if resolved.reinit != "create_new" or run_globals.current() is None:
        run_globals.on_init(run)
    return run


def _apply_reinit(settings: Settings) -> Run | None:
    mode = settings.reinit
    if mode is True:
        mode = "finish_previous"
    elif mode in (False, "default", None):
        mode = "return_previous"
    if mode not in ("return_previous", "finish_previous", "create_new"):
        raise UsageError(
            f"reinit={settings.reinit!r} is not valid; use 'return_previous', 'finish_previous' or 'create_new'."
        )
    settings.reinit = mode
    active = list(registry.runs)
    if not active:
        return None
    if mode == "return_previous":
        current = run_globals.current()
        return current if current is not None else active[-1]
    if mode == "finish_previous":
        for run in active:
            run.finish()
    return None


def _filtered_config(config: Any, include: list[str] | None, exclude: list[str] | None) -> dict[str, Any]:
    if include and exclude:
        raise UsageError("Pass config_include_keys or config_exclude_keys, not both.")
    values = config_dict_from(config)
    if include:
        values = {k: v for k, v in values.items() if k in include}
    if exclude:
        values = {k: v for k, v in values.items() if k not in exclude}
    from branchline.sdk.values import normalize

    return {str(k).strip("-"): normalize(v) for k, v in values.items()}


def _build_spec(settings: Settings, config: dict[str, Any]) -> tuple[RunSpec, str | None]:
    project = validate_project_name(settings.project) if settings.project else "uncategorized"
    branch = plan_branch(settings.run_id, settings.resume, settings.resume_from, settings.fork_from)
    run_id = branch.run_id
    resume = settings.resume
    if resume == "auto":
        stored = _read_resume_file(settings)
        if run_id is None and stored:
            run_id = stored
        resume = "allow"
    elif settings.mode != "disabled":
        _resume_file(settings).unlink(missing_ok=True)
    if resume is not None and run_id is None and resume == "must":
        raise UsageError("resume='must' needs the id of the run to resume: pass id=.")
    spec = RunSpec(
        entity=settings.resolved_entity,
        project=project,
        run_id=run_id or generate_run_id(),
        incarnation_id=generate_incarnation_id(),
        session_id=generate_incarnation_id(),
        name=settings.run_name,
        notes=settings.run_notes,
        tags=list(settings.run_tags) if settings.run_tags is not None else None,
        group=settings.run_group,
        job_type=settings.run_job_type,
        config=config,
        resume=resume,
        fork_from=branch.fork_from,
        resume_from=branch.resume_from,
        branch_step=branch.step,
        host=socket.gethostname(),
        username=_username(),
        pid=os.getpid(),
        started_at=time.time(),
    )
    return spec, branch.kind


def _username() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:
        return ""


def _resume_file(settings: Settings) -> Path:
    return settings.branchline_dir / "resume.json"


def _read_resume_file(settings: Settings) -> str | None:
    try:
        data = json.loads(_resume_file(settings).read_text())
    except (OSError, ValueError):
        return None
    run_id = data.get("run_id") if isinstance(data, dict) else None
    return run_id if isinstance(run_id, str) else None


def _local_start(spec: RunSpec) -> RunStart:
    """What an offline or disabled run knows without a store."""
    return RunStart.without_store(spec, name=spec.name or f"offline-{spec.run_id}")


def _replay_pending(settings: Settings, terminal: Terminal) -> None:
    """Store journals left behind by crashed runs in this directory before starting a new one."""
    root = settings.branchline_dir
    if not (root / "runs").exists():
        return
    from branchline.sdk.sync import pending_journals, sync_journal

    journals = pending_journals(root)
    if not journals:
        return
    from branchline.sdk.sink import make_sink

    sink = make_sink(_sink_target(settings))
    try:
        for journal in journals:
            try:
                result = sync_journal(journal, sink)
            except Exception as exc:
                terminal.warn(f"could not store {journal}: {exc}; run `branchline sync {journal.parent}`.")
                continue
            if result.warning:
                terminal.warn(result.warning)
    finally:
        sink.close()


def _sink_target(settings: Settings) -> dict[str, Any]:
    """Where this run's records go, as `make_sink` takes it: the server if one is set, else the store."""
    if settings.base_url:
        return {"base_url": settings.base_url, "api_key": settings.api_key}
    return {"store_url": settings.resolved_store_url, "crash_timeout": settings.x_crash_timeout}


def _remote_start(settings: Settings, spec: RunSpec, terminal: Terminal) -> RunStart:
    """Create (resume, fork, rewind) the run on the server; its errors surface as in embedded mode."""
    from branchline.sdk.http_sink import HttpSink

    assert settings.base_url is not None
    _replay_pending(settings, terminal)
    sink = HttpSink(settings.base_url, settings.api_key)
    try:
        if settings.entity is None:
            # wandb's rule: without an entity, runs go to the key owner's own entity.
            default_entity = sink.viewer().get("default_entity")
            if isinstance(default_entity, str) and default_entity:
                spec.entity = default_entity
        start = sink.begin_run(spec)
    finally:
        sink.close()
    for warning in start.warnings:
        terminal.warn(warning)
    return start


def _store_opener(settings: Settings, spec: RunSpec) -> Callable[[], Store]:
    """Opens the store for a run the writer creates, creating it first if the writer has not yet."""

    def open_begun() -> Store:
        from branchline.store import open_store

        store = open_store(settings.resolved_store_url, crash_timeout=settings.x_crash_timeout)
        try:
            store.begin_run(spec)  # idempotent on the session: whichever process comes second reads it
        except BaseException:
            store.close()
            raise
        return store

    return open_begun


def _open_run(settings: Settings, spec: RunSpec, terminal: Terminal, writer: WriterProcess | None) -> Run:
    """Create the run where it is stored (store, server or nowhere yet), its directory and journal."""
    mode = settings.mode
    store = None
    store_opener: Callable[[], Store] | None = None
    run_url: str | None = None
    if mode == "online" and settings.base_url:
        start = _remote_start(settings, spec, terminal)
        run_url = f"{settings.base_url.rstrip('/')}/{start.entity}/{start.project}/runs/{start.run_id}"
    elif mode == "online":
        fast = fast_start(settings, spec)
        if fast is not None:
            start = fast  # the writer creates the run; the store opens here only if the run needs it
            store_opener = _store_opener(settings, spec)
        else:
            _replay_pending(settings, terminal)
            from branchline.store import open_store

            store = open_store(settings.resolved_store_url, crash_timeout=settings.x_crash_timeout)
            try:
                start = store.begin_run(spec)
            except BaseException:
                store.close()
                raise
            for warning in start.warnings:
                terminal.warn(warning)
    else:
        start = _local_start(spec)
        if spec.resume:
            terminal.warn("resume is ignored offline: the run is stored as given when you `branchline sync` it.")

    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    prefix = "offline-run" if mode == "offline" else "run"
    run_dir = settings.branchline_dir / "runs" / f"{prefix}-{stamp}-{spec.run_id}"
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = settings.branchline_dir / "runs" / f"{prefix}-{stamp}-{spec.run_id}-{suffix}"
    files_dir = run_dir / "files"
    files_dir.mkdir(parents=True, exist_ok=True)
    journal = JournalWriter(run_dir / "journal.blj")
    # A shared lock on our own journal tells `branchline sync` that a live process owns it.
    lock_fd = os.open(journal.path, os.O_RDONLY)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)
    journal.write(RecordKind.HEADER, spec.to_json())

    resume_file = None
    if settings.resume == "auto":
        resume_file = _resume_file(settings)
        resume_file.parent.mkdir(parents=True, exist_ok=True)
        resume_file.write_text(json.dumps({"run_id": start.run_id}))

    res = RunResources(
        journal=journal,
        run_dir=run_dir,
        files_dir=files_dir,
        terminal=terminal,
        store=store,
        store_opener=store_opener,
        lock_fd=lock_fd,
        resume_file=resume_file,
        url=run_url,
        writer=writer,
    )
    return Run(settings, start, res)


def _start(settings: Settings, spec: RunSpec, moment_kind: str | None, terminal: Terminal) -> Run:
    mode = settings.mode
    if mode == "disabled":
        journal = JournalWriter(Path(os.devnull), discard=True)
        res = RunResources(journal=journal, run_dir=Path(os.devnull), files_dir=Path(os.devnull), terminal=terminal)
        start = _local_start(spec)
        start.name = settings.run_name or f"dummy-{spec.run_id}"
        return Run(settings, start, res)

    writer: WriterProcess | None = None
    run_ref: list[Run] = []
    target = _sink_target(settings)
    if mode == "online":
        # The API key goes to the writer through its environment: argv is readable by every user.
        api_key = target.pop("api_key", None)
        writer = WriterProcess(
            target,
            terminal,
            on_stop=lambda: _stop_requested(run_ref[0]) if run_ref else None,
            env={WRITER_KEY_ENV: api_key} if api_key else None,
        )
    try:
        run = _open_run(settings, spec, terminal, writer)
    except BaseException:
        if writer is not None:
            writer.abandon()
        raise
    run_ref.append(run)
    if writer is not None:
        args: dict[str, Any] = {
            "journal": str(run._res.journal.path),
            "session_id": spec.session_id,
            "incarnation_id": run.incarnation_id,
            "run_path": run.path,
            "target": target,
            "poll_seconds": settings.x_writer_poll_seconds,
            "heartbeat_seconds": settings.heartbeat_seconds,
        }
        if run._res.store_opener is not None:
            args["begin"] = spec.to_json()  # a fast start: the writer creates the run
        writer.start(args, run._res.run_dir / "writer.log")
    from branchline.sdk.telemetry import start_telemetry

    # Online and offline alike (disabled runs returned above); it never raises.
    start_telemetry(run)
    _print_header(run, settings, moment_kind)
    return run


def _stop_requested(run: Run) -> None:
    import _thread

    run._killed = True
    run._res.terminal.warn(f"Run {run.id} was stopped from the UI or API; interrupting the training process.")
    _thread.interrupt_main()


def _print_header(run: Run, settings: Settings, moment_kind: str | None) -> None:
    terminal = run._res.terminal
    what = "Resuming" if run.resumed else "Starting"
    if moment_kind == "fork":
        what = "Forking"
    elif moment_kind == "rewind":
        what = "Rewinding"
    terminal.log(f"{what} run {run.name} ({run.path})")
    origin = run.forked_from
    if origin:
        terminal.log(f"  from {origin['path']} at step {origin['step']}; logging continues at step {run.starting_step}")
    if settings.mode == "offline":
        terminal.log(f"  offline: stored in {run._res.run_dir}; `branchline sync` stores it later")
    elif run.url:
        terminal.log(f"  view it at {run.url}")
    else:
        terminal.log(f"  stored in {settings.resolved_store_url}")
        terminal.log(f"  view it with: branchline ui --dir {settings.branchline_dir.parent}")
