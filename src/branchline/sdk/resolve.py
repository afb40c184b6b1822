"""`init()`'s arguments resolved into the run to start: its spec, config and resume-file rules."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from branchline.errors import UsageError
from branchline.runspec import RunSpec
from branchline.sdk.branching import plan_branch
from branchline.sdk.config import config_dict_from, config_value
from branchline.settings import Settings
from branchline.vocab import generate_incarnation_id, generate_run_id, validate_project_name

__all__ = ["build_spec", "filtered_config", "read_resume_file", "resume_file"]


def filtered_config(config: Any, include: list[str] | None, exclude: list[str] | None) -> dict[str, Any]:
    """`config=` as a plain dict of stored values, after `config_include_keys`/`config_exclude_keys`."""
    if include and exclude:
        raise UsageError("Pass config_include_keys or config_exclude_keys, not both.")
    values = config_dict_from(config)
    if include:
        values = {k: v for k, v in values.items() if k in include}
    if exclude:
        values = {k: v for k, v in values.items() if k not in exclude}
    return {str(k).strip("-"): config_value(v) for k, v in values.items()}


def build_spec(settings: Settings, config: dict[str, Any]) -> tuple[RunSpec, str | None]:
    """The run to start, and how: None, "fork" or "rewind" (sdk/branching.py has the rules)."""
    project = validate_project_name(settings.project) if settings.project else "uncategorized"
    branch = plan_branch(settings.run_id, settings.resume, settings.resume_from, settings.fork_from)
    run_id = branch.run_id
    resume = settings.resume
    if resume == "auto":
        stored = read_resume_file(settings)
        if run_id is None and stored:
            run_id = stored
        resume = "allow"
    elif settings.mode != "disabled":
        resume_file(settings).unlink(missing_ok=True)
    if resume is not None and run_id is None and resume == "must":
        raise UsageError("resume='must' needs the id of the run to resume: pass id=.")
    spec = RunSpec(
        entity=settings.resolved_entity,
        project=project,
        run_id=run_id or generate_run_id(),
        incarnation_id=generate_incarnation_id(),
        session_id=generate_incarnation_id(),
        name=settings.run_name,
        notes=settings.run_notes,
        tags=list(settings.run_tags) if settings.run_tags is not None else None,
        group=settings.run_group,
        job_type=settings.run_job_type,
        config=config,
        resume=resume,
        fork_from=branch.fork_from,
        resume_from=branch.resume_from,
        branch_step=branch.step,
        host=socket.gethostname(),
        username=_username(),
        pid=os.getpid(),
        started_at=time.time(),
    )
    return spec, branch.kind


def _username() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:
        return ""


def resume_file(settings: Settings) -> Path:
    """Where `resume="auto"` keeps the id of the last run started in this directory."""
    return settings.branchline_dir / "resume.json"


def read_resume_file(settings: Settings) -> str | None:
    try:
        data = json.loads(resume_file(settings).read_text())
    except (OSError, ValueError):
        return None
    run_id = data.get("run_id") if isinstance(data, dict) else None
    return run_id if isinstance(run_id, str) else None
