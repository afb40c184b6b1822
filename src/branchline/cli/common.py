"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from branchline.settings import Settings

__all__ = ["store_options", "resolve_store_url", "settings_for"]

F = TypeVar("F", bound=Callable[..., Any])


def store_options(func: F) -> F:
    """`--dir` and `--store`: which store a command works on."""
    func = click.option(
        "--store",
        "store_url",
        envvar="BRANCHLINE_STORE",
        help="Store URL (sqlite:///path.db or postgresql://...). Default: <dir>/branchline/store.db.",
    )(func)
    func = click.option(
        "--dir",
        "root_dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="BRANCHLINE_DIR",
        help="Directory holding the branchline/ folder (default: the current directory).",
    )(func)
    return func


def settings_for(root_dir: Path | None, store_url: str | None) -> Settings:
    explicit: dict[str, Any] = {"root_dir": str(root_dir) if root_dir else None, "store_url": store_url}
    return Settings.resolve(explicit, None)


def resolve_store_url(root_dir: Path | None, store_url: str | None) -> str:
    return settings_for(root_dir, store_url).resolved_store_url
