"""`branchline.init()`: resolve the settings, start (or resume, fork, rewind) the run, attach its parts.

The spec comes from sdk/resolve.py, the run is created by sdk/open_run.py; here the writer process
is started and handed the run, and the telemetry parts are attached.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from branchline.errors import UsageError
from branchline.runspec import RunSpec
from branchline.sdk import globals as run_globals
from branchline.sdk.context import RunContext
from branchline.sdk.hooks import install_hooks, registry
from branchline.sdk.init_target import check_wandb_base_url
from branchline.sdk.journal import JournalWriter
from branchline.sdk.open_run import local_start, open_run, sink_target
from branchline.sdk.resolve import build_spec, filtered_config
from branchline.sdk.run import Run, validate_tags
from branchline.sdk.terminal import Terminal
from branchline.sdk.writer_process import WRITER_KEY_ENV, WriterProcess
from branchline.settings import Settings, warn_no_effect

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
    anonymous: str | None = None,
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
        "sync_tensorboard": True if (sync_tensorboard or tensorboard) else None,
    }
    _warn_ignored(force=force, monitor_gym=monitor_gym, anonymous=anonymous)
    resolved = Settings.resolve(explicit, settings)
    check_wandb_base_url(resolved, Terminal(resolved.quiet))
    _set_tags(resolved, tags)
    previous = _apply_reinit(resolved)
    if previous is not None:
        return _returning(previous, resolved)

    config_values = filtered_config(config, config_include_keys, config_exclude_keys)
    spec, moment_kind = build_spec(resolved, config_values)
    terminal = Terminal(resolved.quiet)
    install_hooks()
    run, context = _start(resolved, spec, moment_kind, terminal)
    if resolved.sync_tensorboard and resolved.mode != "disabled":
        from branchline.sdk.tensorboard import start_sync

        start_sync(run, context)
    registry.add(run, context)
    if resolved.reinit != "create_new" or run_globals.current() is None:
        run_globals.on_init(run)
    return run


def _set_tags(resolved: Settings, tags: Any) -> None:
    """Tags passed to `init` win over the settings' (`WANDB_TAGS`, …); both are checked alike."""
    chosen = tags if tags is not None else resolved.run_tags
    if chosen is not None:
        resolved.run_tags = validate_tags(chosen)


def _returning(previous: Run, resolved: Settings) -> Run:
    Terminal(resolved.quiet).log(
        f"A run ({previous.id}) is already active in this process; returning it. "
        "Pass reinit='finish_previous' or 'create_new' to start another."
    )
    return previous


#: init() arguments of wandb's that do nothing here, and why.
_IGNORED = {
    "force": "there is no login to require: runs go to the embedded store or BRANCHLINE_BASE_URL",
    "monitor_gym": "gym videos are not recorded; log them with the media types",
    "anonymous": "deprecated in wandb; there are no anonymous accounts",
}


def _warn_ignored(**values: Any) -> None:
    for name, value in values.items():
        if value is not None and value is not False:
            warn_no_effect(name, _IGNORED[name])


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


def _start(settings: Settings, spec: RunSpec, moment_kind: str | None, terminal: Terminal) -> tuple[Run, RunContext]:
    mode = settings.mode
    if mode == "disabled":
        journal = JournalWriter(Path(os.devnull), discard=True)
        start = local_start(spec)
        start.name = settings.run_name or f"dummy-{spec.run_id}"
        devnull = Path(os.devnull)
        res = RunContext(journal, settings, start, run_dir=devnull, files_dir=devnull, terminal=terminal)
        return Run(settings, start, res), res

    writer: WriterProcess | None = None
    context_ref: list[RunContext] = []
    target = sink_target(settings)
    if mode == "online":
        # The API key goes to the writer through its environment: argv is readable by every user.
        api_key = target.pop("api_key", None)
        writer = WriterProcess(
            target,
            terminal,
            on_stop=lambda: _stop_requested(context_ref[0]) if context_ref else None,
            env={WRITER_KEY_ENV: api_key} if api_key else None,
            on_error=registry.count_writer_error,
        )
    try:
        run, context = open_run(settings, spec, terminal, writer)
    except BaseException:
        if writer is not None:
            writer.abandon()
        raise
    context_ref.append(context)
    if writer is not None:
        args: dict[str, Any] = {
            "journal": str(context.journal.path),
            "session_id": spec.session_id,
            "incarnation_id": run.incarnation_id,
            "run_path": run.path,
            "target": target,
            "poll_seconds": settings.x_writer_poll_seconds,
            "heartbeat_seconds": settings.heartbeat_seconds,
            "stop_grace": settings.x_stop_grace,
        }
        if context.store_opener is not None:
            args["begin"] = spec.to_json()  # a fast start: the writer creates the run
        writer.start(args, context.run_dir / "writer.log")
    from branchline.sdk.telemetry import start_telemetry

    # Online and offline alike (disabled runs returned above); it never raises.
    start_telemetry(context)
    _print_header(run, context, moment_kind)
    return run, context


def _stop_requested(context: RunContext) -> None:
    import _thread
    import signal

    context.killed = True
    grace = context.settings.x_stop_grace
    if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL, None):
        # interrupt_main() does nothing then: the writer ends the process (sdk/stopping.py).
        context.terminal.warn(
            f"Run {context.start.run_id} was stopped from the UI or API, but this process ignores "
            f"SIGINT; it gets SIGTERM in {grace:g} s and SIGKILL {grace:g} s later."
        )
        return
    context.terminal.warn(
        f"Run {context.start.run_id} was stopped from the UI or API; interrupting the training process "
        f"(if it does not end within {grace:g} s it is terminated)."
    )
    _thread.interrupt_main()


def _print_header(run: Run, context: RunContext, moment_kind: str | None) -> None:
    settings = context.settings
    terminal = context.terminal
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
        terminal.log(f"  offline: stored in {context.run_dir}; `branchline sync` stores it later")
    elif run.url:
        terminal.log(f"  view it at {run.url}")
    else:
        terminal.log(f"  stored in {settings.resolved_store_url}")
        terminal.log(f"  view it with: branchline ui --dir {settings.branchline_dir.parent}")
