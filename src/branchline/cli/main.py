"""Entry point of the `branchline` command: one group, one module per command family."""

from __future__ import annotations

import click

from branchline._version import __version__

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="branchline")
def cli() -> None:
    """branchline: track, fork and rewind ML experiments, locally or on a team server."""


def _register() -> None:
    from branchline.cli import admin, db, sync

    cli.add_command(sync.sync)
    cli.add_command(db.db)
    for command in (admin.users, admin.keys, admin.teams, admin.projects, admin.login):
        cli.add_command(command)
    try:
        from branchline.cli import runs

        cli.add_command(runs.runs)
    except ImportError:
        pass
    try:
        from branchline.cli import serve

        cli.add_command(serve.ui)
        cli.add_command(serve.server)
    except ImportError:
        pass


_register()


def main() -> None:
    cli()
