"""Creating a run where it is stored (the store, a server, or nowhere yet), with its directory and journal."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from branchline.runspec import RunSpec, RunStart
from branchline.sdk.context import RunContext
from branchline.sdk.fast_start import fast_start
from branchline.sdk.journal import JournalWriter
from branchline.sdk.resolve import resume_file
from branchline.sdk.run import Run
from branchline.sdk.terminal import Terminal
from branchline.sdk.writer_process import WriterProcess
from branchline.settings import Settings
from branchline.vocab import RecordKind

if TYPE_CHECKING:
    from branchline.store import Store

__all__ = ["local_start", "open_run", "sink_target"]


def local_start(spec: RunSpec) -> RunStart:
    """What an offline or disabled run knows without a store."""
    return RunStart.without_store(spec, name=spec.name or f"offline-{spec.run_id}")


def _replay_pending(settings: Settings, terminal: Terminal) -> None:
    """Store journals left behind by crashed runs in this directory before starting a new one."""
    root = settings.branchline_dir
    if not (root / "runs").exists():
        return
    from branchline.sdk.sync import describe_failure, pending_journals, sync_journal

    journals = pending_journals(root)
    if not journals:
        return
    from branchline.sdk.sink import make_sink

    sink = make_sink(sink_target(settings))
    try:
        for journal in journals:
            try:
                result = sync_journal(journal, sink)
            except Exception as exc:
                said = describe_failure(exc)
                terminal.warn(f"could not store {journal}: {said}; run `branchline sync {journal.parent}`.")
                continue
            if result.warning:
                terminal.warn(result.warning)
    finally:
        sink.close()


def sink_target(settings: Settings) -> dict[str, Any]:
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


def open_run(
    settings: Settings, spec: RunSpec, terminal: Terminal, writer: WriterProcess | None
) -> tuple[Run, RunContext]:
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
        start = local_start(spec)
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

    resume_path = None
    if settings.resume == "auto":
        resume_path = resume_file(settings)
        resume_path.parent.mkdir(parents=True, exist_ok=True)
        resume_path.write_text(json.dumps({"run_id": start.run_id}))

    res = RunContext(
        journal=journal,
        settings=settings,
        start=start,
        run_dir=run_dir,
        files_dir=files_dir,
        terminal=terminal,
        store=store,
        store_opener=store_opener,
        lock_fd=lock_fd,
        resume_file=resume_path,
        url=run_url,
        writer=writer,
    )
    return Run(settings, start, res), res
