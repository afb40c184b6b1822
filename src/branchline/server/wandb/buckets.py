"""Runs ("buckets") as the wandb client creates, resumes, forks and rewinds them.

`UpsertBucket` starts a run the first time it names it (a fork when `_wandb.branch_point` names
another run), resumes it when it names a run that is no longer running, and otherwise edits the
live run (config, name, notes, tags, group, job type). `RunResumeStatus` tells the client where a
run left off; `RewindRun` archives the current incarnation and starts a new one at the step, as
`resume_from` does with our SDK.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from typing import Any

from sqlalchemy.exc import IntegrityError

from branchline.errors import RunNotFoundError, UsageError
from branchline.runspec import RunSpec
from branchline.server.errors import ApiError
from branchline.server.wandb.context import WandbContext, input_of, unwrap_config, wrap_config
from branchline.store.interface import RunView
from branchline.vocab import RecordKind, generate_incarnation_id, generate_run_id

__all__ = ["FORK_PARENT_WAIT", "bucket", "resume_clock", "resume_status", "rewind_run", "upsert_bucket"]

#: Seconds a fork waits for the run it forks from to be created (`wandb sync` uploads runs in parallel).
FORK_PARENT_WAIT = 15.0

#: UpsertBucket variables → our run fields (name, notes, tags, group, job_type).
_META_VARS = (
    ("displayName", "name"),
    ("notes", "notes"),
    ("tags", "tags"),
    ("groupName", "group"),
    ("jobType", "job_type"),
)


def _meta(variables: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for var, name in _META_VARS:
        value = variables.get(var)
        if name == "tags":
            if isinstance(value, list):
                values["tags"] = [str(t) for t in value]
        elif isinstance(value, str):
            values[name] = value
    return values


#: States in which a run is not resumed by an UpsertBucket that names it (it is edited).
_LIVE = frozenset({"running", "preempting"})


def resume_clock(ctx: WandbContext, run: RunView) -> float:
    """Where a resuming client's clock (`_runtime`) starts: the run's Runtime, pauses included.

    The client continues its timer from `_wandb.runtime` (whole seconds) and every `_runtime` it
    sends after that is that offset plus its own elapsed time. The store keeps `_runtime` on the
    wall clock, as our SDK does: a resume counts the time since the run ended as a pause, which
    Runtime includes and Duration (Runtime less the pauses) does not. So a run that is not live
    answers its Runtime plus the pause so far (`RunResumeStatus` comes before the resuming
    UpsertBucket); answering the active time instead would leave the pause out of the new
    `_runtime` values and take it off Duration.
    """
    if run.state in _LIVE:
        return run.runtime
    ended = run.finished_at if run.finished_at is not None else run.heartbeat_at
    return run.runtime + max(0.0, ctx.now - float(ended))


def _summary_for_client(run: RunView, clock: float) -> dict[str, Any]:
    summary = dict(run.summary)
    summary.setdefault("_step", max(run.last_step, 0))
    summary.setdefault("_runtime", run.runtime)
    summary["_wandb"] = {"runtime": int(clock)}
    return summary


def bucket(ctx: WandbContext, run: RunView) -> dict[str, Any]:
    """A run as the client reads `bucket { … }` (unknown fields answer null)."""
    inc = run.incarnation_id
    found = run.metadata.get("wandb")
    wandb_meta: dict[str, Any] = found if isinstance(found, dict) else {}
    clock = resume_clock(ctx, run)
    last = {"_step": run.last_step, "_runtime": clock}
    project = {"id": f"{run.entity}/{run.project}", "name": run.project, "entity": _entity(run.entity)}
    return {
        "__typename": "Run",
        "id": inc,
        "name": run.run_id,
        "displayName": run.name,
        "description": run.notes,
        "notes": run.notes,
        "tags": list(run.tags),
        "group": run.group,
        "jobType": run.job_type,
        "state": run.state,
        "sweepName": None,
        "project": project,
        "config": wrap_config(run.config),
        "summaryMetrics": json.dumps(_summary_for_client(run, clock), allow_nan=True),
        # A run our SDK logged has no history session: its last step tells the client where to go on.
        "historyLineCount": lambda: max(ctx.stream_offset(inc, "history"), run.last_step + 1),
        "eventsLineCount": lambda: ctx.stream_offset(inc, "events"),
        "logLineCount": lambda: len(ctx.store.console_lines(inc)),
        "historyTail": json.dumps([json.dumps(last)] if run.last_step >= 0 else []),
        "eventsTail": "[]",
        "wandbConfig": _wandb_config(wandb_meta),
        "createdAt": _iso(run.created_at),
        "heartbeatAt": _iso(run.heartbeat_at),
    }


class _WandbConfig:
    """`wandbConfig(keys: [...])`: the client's own config keys, as a JSON string."""

    wants_args = True

    def __init__(self, meta: dict[str, Any]) -> None:
        self.meta = meta

    def __call__(self, args: dict[str, Any]) -> str:
        # A run logged by our SDK resumes too: `t` (the client's telemetry) only has to exist.
        values = {"t": {}, **self.meta}
        keys = args.get("keys")
        if isinstance(keys, list):
            values = {k: values[k] for k in keys if k in values}
        return json.dumps(values)


def _wandb_config(meta: dict[str, Any]) -> _WandbConfig:
    return _WandbConfig(meta)


def _entity(name: str) -> dict[str, Any]:
    return {"__typename": "Entity", "id": name, "name": name, "organization": None}


def _iso(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _begin(ctx: WandbContext, spec: RunSpec) -> None:
    try:
        ctx.store.begin_run(spec)
    except RunNotFoundError as exc:
        raise ApiError(404, str(exc), code="run_not_found") from None
    except UsageError as exc:
        raise ApiError(409, str(exc), code="conflict") from None
    except IntegrityError:
        pass  # a concurrent upsert started the same run first: the caller reads it back and edits it


def _spec(ctx: WandbContext, entity: str, project: str, run_id: str, variables: dict[str, Any]) -> RunSpec:
    meta = _meta(variables)
    return RunSpec(
        entity=entity,
        project=project,
        run_id=run_id,
        incarnation_id=generate_incarnation_id(),
        session_id=secrets.token_hex(16),
        name=meta.get("name"),
        notes=meta.get("notes"),
        tags=meta.get("tags"),
        group=meta.get("group"),
        job_type=meta.get("job_type"),
        host=str(variables.get("host") or ""),
        username=ctx.principal.username or "",
        started_at=ctx.now,
    )


def _wait_for_parent(ctx: WandbContext, entity: str, project: str, parent: str) -> None:
    """Give a fork's parent a moment to appear before starting the fork.

    `wandb sync` uploads several offline runs at once, so a fork can arrive just before the run it
    forks from. Its history is read through the lineage, so the parent's rows may come later; only
    the parent itself must exist. A parent that never comes fails the fork with the store's error
    (`wandb sync` leaves that run unsynced, and running it again retries it).
    """
    deadline = time.monotonic() + FORK_PARENT_WAIT
    while ctx.store.get_run(entity, project, parent) is None and time.monotonic() < deadline:
        time.sleep(0.25)


def upsert_bucket(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """Start, resume or edit the run the variables name; the answer is the run."""
    entity = ctx.entity(variables.get("entity"))
    project = str(variables.get("project") or variables.get("modelName") or "uncategorized")
    run_id = str(variables.get("name") or generate_run_id())
    ctx.check(entity, project, write=True)
    config, wandb_meta = unwrap_config(variables.get("config"))
    run = ctx.store.get_run(entity, project, run_id)
    inserted = run is None
    if run is None:
        spec = _spec(ctx, entity, project, run_id, variables)
        branch = wandb_meta.get("branch_point")
        if isinstance(branch, dict) and branch.get("run_id") not in (None, run_id):
            spec.fork_from, spec.branch_step = str(branch["run_id"]), int(branch.get("step") or 0)
            _wait_for_parent(ctx, entity, project, spec.fork_from)
        _begin(ctx, spec)
    elif run.state not in _LIVE:
        spec = _spec(ctx, entity, project, run_id, variables)
        spec.resume = "allow"
        # The run may be alive after all (another upsert of it raced us): then it is edited.
        with contextlib.suppress(UsageError):
            ctx.store.begin_run(spec)
    run = ctx.store.get_run(entity, project, run_id)
    if run is None:
        raise ApiError(404, f"Run {entity}/{project}/{run_id} could not be started.", field="name")
    _edit(ctx, run, config, wandb_meta, variables)
    run = ctx.store.get_run(entity, project, run_id) or run
    return {"upsertBucket": {"bucket": bucket(ctx, run), "inserted": inserted}}


def _edit(
    ctx: WandbContext, run: RunView, config: dict[str, Any], wandb_meta: dict[str, Any], variables: dict[str, Any]
) -> None:
    records: list[tuple[RecordKind, list[Any]]] = []
    if config:
        records.append((RecordKind.CONFIG, [config]))
    meta = _meta(variables)
    if meta:
        records.append((RecordKind.META, [meta]))
    machine = {k: variables[k] for k in ("host", "program", "commit", "repo") if isinstance(variables.get(k), str)}
    machine = {**_environment(wandb_meta), **machine}
    if wandb_meta or machine:
        values: dict[str, Any] = dict(machine)
        if wandb_meta:
            values["wandb"] = wandb_meta
        records.append((RecordKind.METADATA, [values]))
    ctx.apply_control(run.incarnation_id, records)


#: Facts of the client's environment block (`_wandb.e`) that our SDK's metadata names the same
#: way, so the run page's Overview shows them for either client.
_ENVIRONMENT_KEYS = (
    "os",
    "python",
    "executable",
    "codePath",
    "root",
    "args",
    "startedAt",
    "cpu_count",
    "cpu_count_logical",
    "cpu",
    "memory",
    "disk",
)


def _environment(wandb_meta: dict[str, Any]) -> dict[str, Any]:
    """The OS, Python, executable, … of the process that logs, from the client's `_wandb.e`
    block (one entry per writer process; the last one wins)."""
    found = wandb_meta.get("e")
    values: dict[str, Any] = {}
    if isinstance(found, dict):
        for env in found.values():
            if isinstance(env, dict):
                values.update({k: env[k] for k in _ENVIRONMENT_KEYS if k in env})
    return values


def resume_status(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """`model(name, entityName) { bucket(name) { … } }`: the run to resume, or a null bucket."""
    entity = ctx.entity(variables.get("entity"))
    project = str(variables.get("project") or "uncategorized")
    run = ctx.find_run(entity, project, str(variables.get("name") or ""))
    model = {
        "__typename": "Project",
        "id": f"{entity}/{project}",
        "name": project,
        "entity": _entity(entity),
        "bucket": None if run is None else bucket(ctx, run),
    }
    return {"model": model, "project": model}


def rewind_run(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """Archive the run's current incarnation and start a new one that sees it up to the step."""
    source = input_of(variables)
    entity = ctx.entity(source.get("entity") or source.get("entityName"))
    project = str(source.get("project") or source.get("projectName") or "uncategorized")
    run_id = str(source.get("runName") or source.get("name") or "")
    metric = source.get("metricName") or "_step"
    if metric != "_step":
        raise ApiError(400, f"Rewinding is by `_step` only, not {metric!r}.", field="metricName")
    run = ctx.find_run(entity, project, run_id)
    if run is None:
        return {"rewindRun": {"rewoundRun": None}}
    ctx.check(entity, project, write=True)
    step = int(float(source.get("metricValue") or 0))
    spec = _spec(ctx, entity, project, run_id, {})
    spec.resume_from, spec.branch_step = run_id, step
    _begin(ctx, spec)
    rewound = ctx.store.get_run(entity, project, run_id)
    assert rewound is not None
    answer = bucket(ctx, rewound)
    answer["historyLineCount"] = step + 1  # the client goes on logging at this offset, step + 1
    return {"rewindRun": {"rewoundRun": answer}}
