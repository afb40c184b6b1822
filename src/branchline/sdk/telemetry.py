"""Run telemetry started by `init`: console capture, system metrics, metadata, requirements, code.

Every part writes journal records from its own background thread. `JournalWriter.lock` (which
`Run.log`'s fast path also takes) keeps those records whole and in sequence order. Parts are
attached to the run's context for a shutdown phase (sdk/context.py); `finish` stops them phase by
phase before the exit record, so the console capture goes last and sees what the others print.

System-metric keys are stored without a prefix (`cpu`, `gpu.0.temp`, ...) in history stream 1;
the public API and the UI show them as `system.<key>`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from branchline.sdk.console import ConsoleCapture, ConsoleMode, LineBatch, LoggingForwarder
from branchline.sdk.context import ShutdownPhase
from branchline.sdk.files import RunFiles, clean_relpath
from branchline.sdk.system_monitor import SystemMonitor
from branchline.vocab import RecordKind

if TYPE_CHECKING:
    from branchline.sdk.context import RunContext

__all__ = ["METADATA_FILE", "REQUIREMENTS_FILE", "console_mode", "start_telemetry"]

METADATA_FILE = "branchline-metadata.json"
REQUIREMENTS_FILE = "requirements.txt"
# Metadata normally takes ~15 ms plus git (itself capped at 1 s); finish never waits longer.
_METADATA_JOIN_SECONDS = 10.0
_REQUIREMENTS_DELAY_SECONDS = 5.0
_CONSOLE_MODES: dict[str, ConsoleMode] = {
    "auto": "wrap",
    "wrap": "wrap",
    "wrap_raw": "wrap",
    "wrap_emu": "wrap",
    "redirect": "redirect",
    "off": "off",
}


def console_mode(setting: object) -> ConsoleMode | None:
    """The capture mode for a `console` setting; None when the setting is not known."""
    return _CONSOLE_MODES.get(str(setting).strip().lower())


def _reporter(ctx: RunContext, part: str) -> Callable[[BaseException], None]:
    def report(exc: BaseException) -> None:
        ctx.warn_once(f"telemetry:{part}", f"{part} failed ({exc!r}); the run continues without it.")

    return report


def start_telemetry(ctx: RunContext) -> None:
    """Start everything a run records besides user metrics, per its settings. Never raises."""
    settings = ctx.settings
    try:
        files = RunFiles(ctx)
    except Exception as exc:
        _reporter(ctx, "run files")(exc)
        return
    # Metadata may still store files: it stops (STOP_PRODUCERS) before `files` (STORE_FILES).
    _start_part(ctx, "metadata", ShutdownPhase.STOP_PRODUCERS, lambda: _MetadataTask(ctx, files))
    ctx.attach(files, ShutdownPhase.STORE_FILES)
    if not settings.x_disable_stats:
        _start_part(ctx, "system metrics", ShutdownPhase.STOP_PRODUCERS, lambda: _start_monitor(ctx))
    mode = console_mode(settings.console)
    if mode is None:
        ctx.warn_once("telemetry:console-mode", f"console={settings.console!r} is not known; using 'wrap'.")
        mode = "wrap"
    if mode != "off":
        _start_part(ctx, "console capture", ShutdownPhase.FLUSH_CONSOLE, lambda: _start_console(ctx, mode))
    if settings.capture_loggers:
        loggers = settings.capture_loggers
        _start_part(ctx, "logging capture", ShutdownPhase.FLUSH_CONSOLE, lambda: _LoggerCapture(ctx, loggers))


class _LoggerCapture:
    """Forwards records of chosen Python loggers into the run's console log (`capture_loggers`)."""

    def __init__(self, ctx: RunContext, loggers: dict[str, str | int]) -> None:
        journal = ctx.journal

        def emit(batch: LineBatch) -> None:
            journal.write(RecordKind.OUTPUT, [[stream, ts, text] for stream, text, ts in batch])

        self._attached: list[tuple[logging.Logger, LoggingForwarder, int]] = []
        for name, level in loggers.items():
            wanted = _level(level)
            handler = LoggingForwarder(emit, wanted, on_error=_reporter(ctx, f"logger {name!r}"))
            logger = logging.getLogger(name or None)
            previous = logger.level
            # A logger inheriting WARNING would drop INFO records before any handler sees them.
            if logger.getEffectiveLevel() > wanted:
                logger.setLevel(wanted)
            logger.addHandler(handler)
            self._attached.append((logger, handler, previous))

    def stop(self) -> None:
        for logger, handler, previous in self._attached:
            logger.removeHandler(handler)
            logger.setLevel(previous)
        self._attached = []


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    value = logging.getLevelName(str(level).upper())
    if not isinstance(value, int):
        raise ValueError(f"capture_loggers: unknown level {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL.")
    return value


def _start_part(ctx: RunContext, name: str, phase: ShutdownPhase, make: Callable[[], Any]) -> None:
    try:
        part = make()
    except Exception as exc:  # one broken part leaves the others (and training) running
        _reporter(ctx, name)(exc)
        return
    ctx.attach(part, phase)


def _start_monitor(ctx: RunContext) -> SystemMonitor:
    journal = ctx.journal
    settings = ctx.settings
    runtime = ctx.runtime

    def emit(sample: dict[str, float]) -> None:
        if sample:
            journal.write(RecordKind.SYSTEM, time.time(), runtime(), sample)

    report = _reporter(ctx, "system metrics")

    def on_error(exc: BaseException) -> None:
        # A child process (git for the metadata, a data loader worker) exiting while the
        # sampler primes its CPU counter is normal, not a failure worth a warning.
        if not isinstance(exc, psutil.NoSuchProcess):
            report(exc)

    monitor = SystemMonitor(
        settings.x_stats_sampling_interval,
        emit,
        disk_paths=tuple(settings.x_stats_disk_paths) or ("/",),
        on_error=on_error,
    )
    monitor.start()
    return monitor


def _start_console(ctx: RunContext, mode: ConsoleMode) -> ConsoleCapture:
    journal = ctx.journal

    def emit(batch: LineBatch) -> None:
        journal.write(RecordKind.OUTPUT, [[stream, ts, text] for stream, text, ts in batch])

    capture = ConsoleCapture(mode, emit, on_error=_reporter(ctx, "console capture"))
    capture.start()
    return capture


def _main_script() -> Path | None:
    """The file `python` was asked to run; None for the REPL, `-c` and notebooks."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not isinstance(path, str):
        return None
    resolved = Path(path).resolve()
    return resolved if resolved.is_file() else None


class _MetadataTask:
    """Collects metadata, requirements and (with save_code) the main script on a thread."""

    def __init__(self, ctx: RunContext, files: RunFiles) -> None:
        self._ctx = ctx
        self._files = files
        self._files_dir = ctx.files_dir
        self._save_code = bool(ctx.settings.save_code)
        # Taken now, not on the thread: the training code may chdir right after init.
        self._root = os.getcwd()
        self._script = _main_script()
        self._closed = False
        self._finishing = threading.Event()
        self._thread = threading.Thread(target=self._work, name="branchline-metadata", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._finishing.set()
        self._thread.join(_METADATA_JOIN_SECONDS)
        # A thread that overran must not write after the run's exit record.
        self._closed = True

    def _work(self) -> None:
        # Imported here, off the init path: importlib.metadata, platform and email cost ~15 ms.
        from branchline.sdk.metadata import collect_metadata, requirements

        root = self._root
        script = self._script
        meta: dict[str, object] = {}
        try:
            meta = collect_metadata(str(script) if script else None, root)
        except Exception as exc:
            _reporter(self._ctx, "metadata")(exc)
        if self._save_code:
            try:
                if script is None:
                    self._ctx.terminal.log("save_code: no main script to save (interactive session or -c).")
                else:
                    meta["codeSaved"] = self._store_code(script, root)
            except Exception as exc:
                _reporter(self._ctx, "save_code")(exc)
        try:
            if meta and not self._closed:
                self._ctx.journal.write(RecordKind.METADATA, meta)
            path = self._files_dir / METADATA_FILE
            path.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
            self._store(path, METADATA_FILE)
        except Exception as exc:
            _reporter(self._ctx, "metadata")(exc)
        # The installed-packages scan holds the GIL for tens of milliseconds: not while training
        # starts, but a few seconds in (or at finish, for a shorter run).
        self._finishing.wait(_REQUIREMENTS_DELAY_SECONDS)
        try:
            path = self._files_dir / REQUIREMENTS_FILE
            path.write_text(requirements())
            self._store(path, REQUIREMENTS_FILE)
        except Exception as exc:
            _reporter(self._ctx, "requirements")(exc)

    def _store_code(self, script: Path, root: str) -> str:
        """Copy the main script to run.dir/code/<path relative to root> and store it."""
        base = Path(root).resolve()
        rel = script.relative_to(base).as_posix() if script.is_relative_to(base) else script.name
        name = "code/" + clean_relpath(rel)
        target = self._files_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(script, target)
        self._store(target, name)
        return name

    def _store(self, path: Path, rel: str) -> None:
        if not self._closed:
            self._files.store(path, rel)
