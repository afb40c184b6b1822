"""The public read API: `Api`, `Run`, `Runs`, `Project` (wandb's `wandb.Api()` surface)."""

from __future__ import annotations

from typing import Any

from branchline.api.api import Api
from branchline.api.backend import Backend
from branchline.api.history import KeysError
from branchline.api.paths import PathError
from branchline.api.projects import Project
from branchline.api.runs import Run, Runs

__all__ = ["Api", "Backend", "KeysError", "PathError", "Project", "Run", "Runs"]


def __getattr__(name: str) -> Any:
    """`wandb.api.api_key`-style look-ups: the key, server URL and entity the settings resolve to."""
    if name in ("api_key", "api_url", "default_entity"):
        from branchline.settings import Settings

        resolved = Settings.resolve({}, None)
        return {"api_key": resolved.api_key, "api_url": resolved.base_url, "default_entity": resolved.resolved_entity}[
            name
        ]
    raise AttributeError(f"module 'branchline.api' has no attribute {name!r}")
