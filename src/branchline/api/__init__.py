"""The public read API: `Api`, `Run`, `Runs`, `Project` (wandb's `wandb.Api()` surface)."""

from __future__ import annotations

from branchline.api.api import Api
from branchline.api.backend import Backend
from branchline.api.history import KeysError
from branchline.api.paths import PathError
from branchline.api.projects import Project
from branchline.api.runs import Run, Runs

__all__ = ["Api", "Backend", "KeysError", "PathError", "Project", "Run", "Runs"]
