"""`branchline sync`: store journals of crashed and offline runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from branchline.cli.common import settings_for, store_options

__all__ = ["sync"]


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@store_options
@click.option("--project", "-p", help="Store the runs in this project instead of the recorded one.")
@click.option("--entity", "-e", help="Store the runs under this entity instead of the recorded one.")
@click.option("--dry-run", is_flag=True, help="List what would be stored, store nothing.")
def sync(
    paths: tuple[Path, ...],
    root_dir: Path | None,
    store_url: str | None,
    project: str | None,
    entity: str | None,
    dry_run: bool,
) -> None:
    """Store the journals of runs that crashed or ran offline.

    PATHS are run directories or journal files; with none, every journal under
    <dir>/branchline/runs that no live process is writing is stored.
    """
    from branchline.sdk.sink import make_sink
    from branchline.sdk.sync import describe_failure, journal_in_use, pending_journals, sync_journal

    settings = settings_for(root_dir, store_url)
    if not dry_run:
        from branchline.artifacts.staging import sweep_stale

        sweep_stale()  # artifact copies a killed process left in staging
    journals: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("journal.blj")) or sorted(path.glob("runs/*/journal.blj"))
            found = found or sorted(path.glob("branchline/runs/*/journal.blj"))
            journals.extend(found)
        else:
            journals.append(path)
    if not paths:
        journals = pending_journals(settings.branchline_dir)
    journals = [j for j in journals if not journal_in_use(j)]
    if not journals:
        click.echo("Nothing to sync.")
        return
    if dry_run:
        for journal in journals:
            click.echo(f"would sync {journal}")
        return
    # A configured server (`branchline login`, BRANCHLINE_BASE_URL) receives the runs unless --store is given.
    target: dict[str, Any]
    if settings.base_url and not store_url:
        target = {"base_url": settings.base_url, "api_key": settings.api_key}
        click.echo(f"Syncing to {settings.base_url}", err=True)
    else:
        target = {"store_url": settings.resolved_store_url, "crash_timeout": settings.x_crash_timeout}
    try:
        sink = make_sink(target)
    except Exception as exc:
        click.echo(f"Could not open the store: {describe_failure(exc)}. The journals are kept.", err=True)
        raise SystemExit(1) from None
    failures = 0
    try:
        for journal in journals:
            try:
                result = sync_journal(journal, sink, overrides={"project": project, "entity": entity})
            except Exception as exc:
                failures += 1
                # Said plainly (a database error carries its statement and parameters); the journal is kept.
                click.echo(f"Could not sync {journal}: {describe_failure(exc)}. The journal is kept.", err=True)
                continue
            if result.warning:
                click.echo(f"Warning: {result.warning}", err=True)
            state = "finished" if result.finished else "crashed"
            click.echo(f"Synced {result.path}: {result.records} records ({state}).")
    finally:
        sink.close()
    if failures:
        raise SystemExit(1)
