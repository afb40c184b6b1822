"""`branchline db`: schema management."""

from __future__ import annotations

from pathlib import Path

import click

from branchline.cli.common import resolve_store_url, store_options

__all__ = ["db"]


@click.group()
def db() -> None:
    """Manage the store's schema."""


@db.command()
@store_options
def upgrade(root_dir: Path | None, store_url: str | None) -> None:
    """Create the schema, or upgrade it to this version of branchline."""
    from branchline.store.engine import upgrade as run_upgrade

    url = resolve_store_url(root_dir, store_url)
    revision = run_upgrade(url)
    click.echo(f"Store {url} is at schema revision {revision}.")


@db.command()
@store_options
def revision(root_dir: Path | None, store_url: str | None) -> None:
    """Print the store's schema revision."""
    from branchline.store.engine import current_revision, make_engine

    url = resolve_store_url(root_dir, store_url)
    engine = make_engine(url)
    try:
        click.echo(current_revision(engine) or "(empty)")
    finally:
        engine.dispose()
