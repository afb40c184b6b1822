"""Binding `branchline.run`, `branchline.config` and `branchline.summary` to the current run."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from branchline.sdk.run import Run

__all__ = ["on_init", "on_finish", "current"]


def _module() -> object:
    return sys.modules["branchline"]


def current() -> Run | None:
    return getattr(_module(), "run", None)


def on_init(run: Run) -> None:
    module = _module()
    module.run = run  # type: ignore[attr-defined]
    module.config = run.config  # type: ignore[attr-defined]
    module.summary = run.summary  # type: ignore[attr-defined]


def on_finish(run: Run) -> None:
    module = _module()
    if getattr(module, "run", None) is run:
        module.run = None  # type: ignore[attr-defined]
        module.config = None  # type: ignore[attr-defined]
        module.summary = None  # type: ignore[attr-defined]
