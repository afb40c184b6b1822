"""Parsing run and project paths the way wandb's public API accepts them."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from branchline.errors import UsageError

__all__ = ["PathError", "parse_project_path", "parse_run_path"]


class PathError(UsageError, ValueError):
    """A run or project path is malformed or incomplete (a ValueError, as in wandb)."""


def _parts(path: str | Sequence[str], what: str) -> list[str]:
    if not isinstance(path, str):
        if not all(isinstance(part, str) for part in path):
            raise PathError(f"A {what} path must be a string like 'entity/project/run_id', got {path!r}.")
        path = "/".join(path)
    text = path.strip()
    if "://" in text:  # a URL copied from the browser
        text = urlsplit(text).path
    text = text.split("?", 1)[0].split("#", 1)[0].strip("/")
    if not text:
        raise PathError(f"The {what} path is empty.")
    # `entity/project:run_id` and `project:run_id`; run ids and project names never hold ':'.
    parts = text.replace(":", "/").split("/")
    if any(not part for part in parts):
        raise PathError(f"{path!r} is not a valid {what} path: it has an empty part.")
    return parts


def parse_run_path(
    path: str | Sequence[str], *, entity: str | None = None, project: str | None = None
) -> tuple[str, str, str]:
    """(entity, project, run_id) from `entity/project/run_id`, `entity/project/runs/run_id`,
    `project/run_id`, `run_id` or a run's URL; missing parts come from the defaults given."""
    parts = _parts(path, "run")
    if len(parts) >= 4 and parts[2] == "runs":
        parts = [parts[0], parts[1], parts[3]]  # URL form; ignore a trailing tab name
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        if entity is None:
            raise PathError(f"Run path {path!r} has no entity and no default entity is set.")
        return entity, parts[0], parts[1]
    if len(parts) == 1:
        if project is None:
            raise PathError(
                f"Run path {path!r} names no project: pass 'entity/project/run_id' or 'project/run_id', "
                "or set a default project (Api(overrides={'project': ...}) or BRANCHLINE_PROJECT)."
            )
        if entity is None:
            raise PathError(f"Run path {path!r} has no entity and no default entity is set.")
        return entity, project, parts[0]
    raise PathError(
        f"{path!r} is not a run path; use 'entity/project/run_id', 'entity/project/runs/run_id', "
        "'project/run_id' or 'run_id'."
    )


def parse_project_path(
    path: str | Sequence[str] | None, *, entity: str | None = None, project: str | None = None
) -> tuple[str, str]:
    """(entity, project) from `entity/project` or `project`; None means the default project."""
    if path is None:
        if project is None:
            raise PathError(
                "No project given: pass 'entity/project' or 'project', "
                "or set a default project (Api(overrides={'project': ...}) or BRANCHLINE_PROJECT)."
            )
        if entity is None:
            raise PathError("No entity given and no default entity is set.")
        return entity, project
    parts = _parts(path, "project")
    if len(parts) == 2:
        return parts[0], parts[1]
    if len(parts) == 1:
        if entity is None:
            raise PathError(f"Project path {path!r} has no entity and no default entity is set.")
        return entity, parts[0]
    raise PathError(f"{path!r} is not a project path; use 'entity/project' or 'project'.")
