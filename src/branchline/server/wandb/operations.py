"""The GraphQL operations served, by name: each builds a root value the selection set is projected through.

The client names every operation (`operationName`), so dispatch is by name; what a resolver
answers is a superset of what any client version asks, and `graphql_doc.project` keeps only the
selected fields. An operation not listed here is answered with a GraphQL error naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from branchline.server.wandb import artifacts, buckets, public_api
from branchline.server.wandb.context import WandbContext, input_of
from branchline.vocab import RecordKind

__all__ = ["OPERATIONS", "TESTED_CLIENT", "Resolver", "introspection", "viewer"]

Resolver = Callable[[WandbContext, dict[str, Any]], dict[str, Any]]
#: The newest wandb client this server was tested with (scripts/install.sh pins it).
TESTED_CLIENT = "0.31.0"


def viewer(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """Who the key belongs to; `entity` is where runs go when the client names none."""
    entity = ctx.default_entity
    teams = sorted(e for e in ctx.principal.entities if e != entity)
    return {
        "viewer": {
            "__typename": "User",
            "id": entity,
            "entity": entity,
            "username": entity,
            "name": entity,
            "email": "",
            "admin": ctx.principal.admin,
            "flags": "{}",
            "apiKeys": {"edges": []},
            "defaultFramework": None,
            "teams": {"edges": [{"node": {"__typename": "Entity", "id": t, "name": t}} for t in teams]},
            "organizations": [],
        },
        "serverInfo": _server_info(),
    }


def _server_info() -> dict[str, Any]:
    # Older clients send alerts only to a server whose `max_cli_version` is at least 0.10.9.
    return {
        "__typename": "ServerInfo",
        "features": [],
        "cliVersionInfo": {"max_cli_version": TESTED_CLIENT},
        "latestLocalVersionInfo": None,
    }


def server_features(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """No optional features yet: every request keeps its plainest shape (plain console lines too)."""
    return {"serverInfo": _server_info()}


def organization_id(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    name = str(variables.get("entityName") or ctx.default_entity)
    return {"entity": {"__typename": "Entity", "id": name, "name": name, "organization": None}}


def create_run_files(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """One signed upload URL per named file, in order (the client needs exactly as many)."""
    source = input_of(variables)
    run = ctx.require_run(*_run_args(ctx, variables), write=True)
    names = [str(n) for n in source.get("files") or []]
    files = [
        {
            "__typename": "File",
            "name": name,
            "uploadUrl": f"{ctx.base_url}/wandb/files/{ctx.signer.sign('PUT', run.incarnation_id, name)}",
            "uploadHeaders": [],
        }
        for name in names
    ]
    return {"createRunFiles": {"runID": run.incarnation_id, "uploadHeaders": [], "files": files}}


def _run_args(ctx: WandbContext, variables: dict[str, Any]) -> tuple[str, str, str]:
    source = input_of(variables)
    entity = ctx.entity(source.get("entity") or source.get("entityName"))
    project = str(source.get("project") or source.get("projectName") or "uncategorized")
    return entity, project, str(source.get("run") or source.get("runName") or source.get("name") or "")


def notify_alert(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """`run.alert(title, text, level)`: stored as the run's alert (the web app lists it)."""
    run = ctx.require_run(*_run_args(ctx, variables), write=True)
    source = input_of(variables)
    level = str(source.get("severity") or "INFO").upper()[:8]
    record = [str(source.get("title") or "")[:256], str(source.get("text") or ""), level, ctx.now]
    ctx.apply_control(run.incarnation_id, [(RecordKind.ALERT, record)])
    return {"notifyScriptableRunAlert": {"success": True}}


def run_state(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """`project { run { id state } }`: a run's state, as W&B spells it."""
    entity, project, run_id = _run_args(ctx, variables)
    run = ctx.find_run(entity, project, run_id)
    found = (
        None if run is None else {"__typename": "Run", "id": run.incarnation_id, "name": run.run_id, "state": run.state}
    )
    return {"project": {"__typename": "Project", "name": project, "run": found}}


#: The root fields served, for older clients that probe for them (`__type(name: "Mutation")`).
_ROOT_FIELDS = {
    "Query": ("viewer", "model", "project", "serverInfo", "entity"),
    "Mutation": ("upsertBucket", "createRunFiles", "rewindRun", "notifyScriptableRunAlert"),
    "ServerInfo": ("cliVersionInfo", "features"),
}


class _TypeLookup:
    """`__type(name:)`: the root types list the fields served; every other type has none, so a
    client probing for a newer server feature (older clients did, before W&B banned
    introspection) takes its plainest path."""

    wants_args = True

    def __call__(self, args: dict[str, Any]) -> dict[str, Any]:
        name = str(args.get("name") or "")
        fields = [{"__typename": "__Field", "name": f, "args": []} for f in _ROOT_FIELDS.get(name, ())]
        return {"__typename": "__Type", "name": name, "kind": "OBJECT", "fields": fields, "inputFields": []}


def introspection(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """The answer to an operation that only asks `__type`/`__schema`: no extra features."""
    return {"__type": _TypeLookup(), "__schema": None, "__typename": "Query"}


OPERATIONS: dict[str, Resolver] = {
    "Viewer": viewer,
    "GetViewer": viewer,
    "ServerFeaturesQuery": server_features,
    "OrganizationCoreWeaveOrganizationID": organization_id,
    "UpsertBucket": buckets.upsert_bucket,
    "CreateRunFiles": create_run_files,
    "RunResumeStatus": buckets.resume_status,
    "RewindRun": buckets.rewind_run,
    "NotifyScriptableRunAlert": notify_alert,
    "RunState": run_state,
    **artifacts.OPERATIONS,
    # Last: `run.update()`'s UpsertBucket (by storage id) is public_api's; the rest go on to buckets.
    **public_api.OPERATIONS,
}
