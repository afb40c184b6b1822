"""Finishing a run: stop its parts, write the last records, wait for the writer, say where it is."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from branchline.sdk.hooks import registry
from branchline.sdk.journal import HOLD_WAIT
from branchline.sdk.writer_process import REMOTE_FINISH_TIMEOUT
from branchline.vocab import RecordKind, RunState

if TYPE_CHECKING:
    from branchline.sdk.context import RunContext
    from branchline.sdk.run import Run

__all__ = ["finish_run", "registry"]


def finish_run(
    run: Run,
    res: RunContext,
    exit_code: int,
    state: RunState,
    final_row: Callable[[], None],
    summary: Callable[[], Mapping[str, Any]],
) -> None:
    """Finish `run`: its parts phase by phase, then its last records, the journal and the writer.

    `final_row` writes the row still pending; `summary` gives the summary for the footer.
    """
    res.stop_parts()
    final_row()
    res.journal.write(RecordKind.EXIT, exit_code, state.value, res.runtime())
    settings = res.settings
    # Records a full disk refused are retried for a bounded time; the journal says what was lost.
    res.journal.close(hold_wait=settings.finish_timeout or HOLD_WAIT)
    final_seq = res.journal.seq  # the last record the kernel has
    pending = 0
    if res.writer is not None:
        timeout = settings.finish_timeout
        if timeout is None:
            timeout = REMOTE_FINISH_TIMEOUT if settings.base_url else 0.0
        footer_keys = 0 if res.terminal.quiet else settings.max_end_of_run_history_metrics
        result = res.writer.finish(final_seq, timeout, footer_keys)
        applied = int(result.get("applied", 0))
        if applied < final_seq and not settings.base_url:
            # The writer could not finish (it died or timed out): apply here, idempotently.
            from branchline.sdk.sink import LocalSink
            from branchline.sdk.sync import describe_failure, sync_journal

            try:
                sink = LocalSink(settings.resolved_store_url, settings.x_crash_timeout)
                try:
                    synced = sync_journal(res.journal.path, sink, delete=False)
                finally:
                    sink.close()
                applied = max(applied, synced.last_seq)  # what is stored, never what was hoped for
                if synced.warning:
                    res.terminal.warn(synced.warning)
            except Exception as exc:
                res.terminal.warn(f"could not store the run's last records: {describe_failure(exc)}")
        pending = max(0, final_seq - applied)
    _release_lock(res)
    if res.writer is not None and pending == 0:
        res.journal.path.unlink(missing_ok=True)
    lines = []
    if settings.mode == "offline":
        lines.append(f"Run {run.id} was logged offline. Store it with: branchline sync {res.run_dir}")
    elif pending:
        lines.append(f"{pending} records are not stored yet; `branchline sync {res.run_dir}` will store them.")
        if res.terminal.quiet:  # the footer is not shown, but this must be
            res.terminal.warn(lines[-1])
    elif settings.mode == "online" and res.url:
        lines.append(f"View run {run.name} at {res.url}")
    elif settings.mode == "online":
        lines.append(f"View run {run.name} ({run.path}): branchline ui --dir {settings.branchline_dir.parent}")
    lines.append(f"Run files: {res.files_dir}")
    if settings.mode != "disabled":
        _print_footer(res, lines, summary())
    if res.resume_file is not None and exit_code == 0:
        res.resume_file.unlink(missing_ok=True)
    if res.store is not None:
        res.store.close()
    registry.remove(run)
    from branchline.sdk import globals as run_globals

    run_globals.on_finish(run)


def _print_footer(res: RunContext, lines: list[str], summary: Mapping[str, Any]) -> None:
    if res.terminal.quiet:
        return
    # The writer read the sparklines' points from the store (the training process never imports it).
    found = res.writer.result.get("history") if res.writer is not None else None
    history: dict[str, Sequence[float]] = found if isinstance(found, dict) else {}
    from branchline.summaries import flatten

    flat = {".".join(path): value for path, value in flatten(dict(summary))}
    res.terminal.footer(history, flat, lines)


def _release_lock(res: RunContext) -> None:
    if res.lock_fd >= 0:
        with contextlib.suppress(OSError):
            os.close(res.lock_fd)
        res.lock_fd = -1
