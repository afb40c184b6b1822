"""The read side users script against: `wandb.Api()` pointed at branchline.

Projects, runs (`api.runs(path, filters=, order=)` with wandb's MongoDB-style filters, evaluated
by the store's own filter machinery), one run with its config, summary and fields, its history
(`run.history()` sampled, `run.scan_history()` paged), its files with signed download URLs, and
`run.update()` / `run.summary.update()` edits. Artifact reads live in artifacts.py.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

from branchline.errors import UsageError
from branchline.server.errors import ApiError
from branchline.server.wandb import buckets
from branchline.server.wandb.artifacts import artifact_node
from branchline.server.wandb.buckets import _iso
from branchline.server.wandb.context import SPECIAL_KEYS, WandbContext, unwrap_config, wrap_config
from branchline.store.interface import RunView

__all__ = ["OPERATIONS", "history_rows", "run_node"]

_DEFAULT_PAGE = 50
_MAX_PAGE = 1000


def _project_node(ctx: WandbContext, entity: str, name: str, created_at: float | None = None) -> dict[str, Any]:
    return {
        "__typename": "Project",
        "id": f"{entity}/{name}",
        "internalId": f"{entity}/{name}",
        "name": name,
        "entityName": entity,
        "entity": {"__typename": "Entity", "id": entity, "name": entity},
        "createdAt": _iso(created_at or 0.0),
        "isBenchmark": False,
        "readOnly": False,
        "user": None,
    }


def _page(args: dict[str, Any]) -> tuple[int, int]:
    after = str(args.get("after") or args.get("cursor") or "")
    start = int(after) if after.isdigit() else 0
    first = args.get("first") if args.get("first") is not None else args.get("perPage")
    count = int(first) if isinstance(first, int) and first > 0 else _DEFAULT_PAGE
    return start, min(count, _MAX_PAGE)


def _connection(nodes: list[Any], start: int, total: int) -> dict[str, Any]:
    end = start + len(nodes)
    return {
        "totalCount": total,
        "pageInfo": {"__typename": "PageInfo", "endCursor": str(end), "hasNextPage": end < total},
        "edges": [{"node": n, "cursor": str(start + i + 1)} for i, n in enumerate(nodes)],
    }


# -- viewer and projects -----------------------------------------------------------------------------------
def projects(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """`models(entityName:)`: the entity's projects the caller may read."""
    entity = ctx.entity(variables.get("entity") or variables.get("entityName"))
    rows = []
    for row in ctx.store.list_projects(entity):
        try:
            ctx.check(str(row["entity"]), str(row["name"]))
        except ApiError:
            continue
        rows.append(row)
    start, count = _page(variables)
    nodes = [_project_node(ctx, str(r["entity"]), str(r["name"]), r.get("created_at")) for r in rows]
    return {"models": _connection(nodes[start : start + count], start, len(nodes))}


def project(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """`project(name:, entityName:)`: one project, or null."""
    entity = ctx.entity(variables.get("entity") or variables.get("entityName"))
    name = str(variables.get("name") or variables.get("project") or "")
    ctx.check(entity, name)
    row = next((r for r in ctx.store.list_projects(entity) if r["name"] == name), None)
    return {"project": None if row is None else _project_node(ctx, entity, name, row.get("created_at"))}


# -- runs --------------------------------------------------------------------------------------------------
def _scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return value
    return value


def history_rows(
    ctx: WandbContext,
    run: RunView,
    *,
    keys: list[str] | None = None,
    min_step: int | None = None,
    max_step: int | None = None,
    stream: int = 0,
) -> list[dict[str, Any]]:
    """The run's history rows in step order (following its lineage), `keys` only when given."""
    known = ctx.store.history_keys(run.incarnation_id, stream=stream)
    wanted = [k for k in (keys if keys is not None else list(known)) if k in known and k != "_step"]
    rows: dict[int, dict[str, Any]] = {}
    bounds: dict[str, Any] = {"stream": stream, "min_step": min_step, "max_step": max_step}
    for key in wanted:
        steps, values = ctx.store.read_series(run.incarnation_id, key, **bounds)
        for step, value in zip(steps.tolist(), values.tolist(), strict=True):
            rows.setdefault(int(step), {})[key] = _scalar(value)
        if not known[key].get("numeric", True):
            for step, value in ctx.store.read_objects(run.incarnation_id, key, **bounds):
                rows.setdefault(int(step), {})[key] = value
    out = []
    for step in sorted(rows):
        if (min_step is not None and step < min_step) or (max_step is not None and step > max_step):
            continue
        out.append({"_step": step, **rows[step]})
    return out


def _sample(rows: list[dict[str, Any]], samples: Any) -> list[dict[str, Any]]:
    count = int(samples) if isinstance(samples, int) and samples > 0 else 500
    if len(rows) <= count:
        return rows
    if count == 1:
        return rows[-1:]
    # Evenly spaced rows, the first and the last included.
    picks = sorted({round(i * (len(rows) - 1) / (count - 1)) for i in range(count)})
    return [rows[i] for i in picks]


def _dumps(row: dict[str, Any]) -> str:
    return json.dumps(row, allow_nan=True, default=str)


class _History:
    """`history(samples:, minStep:, maxStep:)`: rows as JSON strings (maxStep exclusive)."""

    wants_args = True

    def __init__(self, ctx: WandbContext, run: RunView, stream: int) -> None:
        self.ctx, self.run, self.stream = ctx, run, stream

    def __call__(self, args: dict[str, Any]) -> list[str]:
        low, high = args.get("minStep"), args.get("maxStep")
        rows = history_rows(
            self.ctx,
            self.run,
            min_step=int(low) if low is not None else None,
            max_step=int(high) - 1 if high is not None else None,
            stream=self.stream,
        )
        if self.stream == 1:
            rows = [{"system." + k if not k.startswith("_") else k: v for k, v in r.items()} for r in rows]
        if low is not None or high is not None:
            limit = args.get("samples")
            return [_dumps(r) for r in (rows[: int(limit)] if isinstance(limit, int) and limit > 0 else rows)]
        return [_dumps(r) for r in _sample(rows, args.get("samples"))]


class _SampledHistory:
    """`sampledHistory(specs: [JSONString])`: per spec, rows of its keys (those holding any of them)."""

    wants_args = True

    def __init__(self, ctx: WandbContext, run: RunView) -> None:
        self.ctx, self.run = ctx, run

    def __call__(self, args: dict[str, Any]) -> list[list[dict[str, Any]]]:
        out = []
        for raw in args.get("specs") or []:
            spec = json.loads(raw) if isinstance(raw, str) else raw
            keys = [str(k) for k in spec.get("keys") or []]
            values = [k for k in keys if k != "_step"]
            rows = history_rows(self.ctx, self.run, keys=values)
            picked = [
                {k: r[k] for k in keys if k in r}
                for r in rows
                if any(k in r for k in values if k not in ("_runtime", "_timestamp")) or not values
            ]
            out.append(_sample(picked, spec.get("samples")))
        return out


class _ParquetHistory:
    """`parquetHistory(liveKeys:)`: no exported parquet files here; every row is live data."""

    wants_args = True

    def __init__(self, ctx: WandbContext, run: RunView) -> None:
        self.ctx, self.run = ctx, run

    def __call__(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"parquetUrls": [], "liveData": history_rows(self.ctx, self.run)}


def _history_keys(ctx: WandbContext, run: RunView) -> dict[str, Any]:
    keys = ctx.store.history_keys(run.incarnation_id)
    described = {
        k: {"typeCounts": [{"type": "number" if info.get("numeric", True) else "string", "count": 1}]}
        for k, info in keys.items()
    }
    return {"lastStep": run.last_step, "keys": described}


class _RunFiles:
    """`files(names:, after:, first:, pattern:)`: the run's files with signed download URLs."""

    wants_args = True

    def __init__(self, ctx: WandbContext, run: RunView) -> None:
        self.ctx, self.run = ctx, run

    def __call__(self, args: dict[str, Any]) -> dict[str, Any]:
        rows = self.ctx.store.files(self.run.incarnation_id)
        names = args.get("names")
        if isinstance(names, list) and names:
            rows = [r for r in rows if r["path"] in set(map(str, names))]
        pattern = args.get("pattern")
        if isinstance(pattern, str) and pattern:
            rows = [r for r in rows if _like(pattern, str(r["path"]))]
        start, count = _page(args)
        nodes = [self._node(r) for r in rows[start : start + count]]
        return _connection(nodes, start, len(rows))

    def _node(self, row: dict[str, Any]) -> dict[str, Any]:
        path = str(row["path"])
        url = f"{self.ctx.base_url}/wandb/files/{self.ctx.signer.sign('GET', self.run.incarnation_id, path)}"
        return {
            "__typename": "File",
            "id": f"{self.run.incarnation_id}:{path}",
            "name": path,
            "url": url,
            "directUrl": url,
            "sizeBytes": int(row.get("size") or 0),
            "mimetype": None,
            "updatedAt": _iso(float(row.get("updated_at") or 0.0)),
            "md5": None,
        }


def _like(pattern: str, text: str) -> bool:
    """SQL LIKE (`%` any run, `_` one character), as the client's `pattern` is."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.DOTALL) is not None


def run_node(ctx: WandbContext, run: RunView) -> dict[str, Any]:
    """A run as `RunFragment` (and the fields hanging off it) reads it; unknown fields answer null."""
    found = run.metadata.get("wandb")
    wandb_meta = found if isinstance(found, dict) else None
    summary = {k: v for k, v in run.summary.items() if k != "_wandb"}
    return {
        **buckets.bucket(ctx, run),
        "projectId": run.pk or 0,
        "displayName": run.name,
        "config": wrap_config(run.config, wandb_meta),
        "summaryMetrics": json.dumps(summary, allow_nan=True, default=str),
        "systemMetrics": "{}",
        "commit": run.metadata.get("commit"),
        "readOnly": run.archived,
        "user": {"__typename": "User", "name": run.username, "username": run.username},
        "host": run.host,
        "historyKeys": lambda: _history_keys(ctx, run),
        "history": _History(ctx, run, 0),
        "events": _History(ctx, run, 1),
        "sampledHistory": _SampledHistory(ctx, run),
        "parquetHistory": _ParquetHistory(ctx, run),
        "files": _RunFiles(ctx, run),
        "fileCount": lambda: len(ctx.store.files(run.incarnation_id)),
        "outputArtifacts": lambda: _artifacts(ctx, run, "logged"),
        "inputArtifacts": lambda: _artifacts(ctx, run, "used"),
    }


def _artifacts(ctx: WandbContext, run: RunView, role: str) -> dict[str, Any]:
    rows = ctx.store.run_artifacts(run.incarnation_id, role)
    return _connection([artifact_node(ctx, r) for r in rows], 0, len(rows))


class _Runs:
    """`runs(filters:, order:, after:, first:)` of one project, filtered and ordered by the store."""

    wants_args = True

    def __init__(self, ctx: WandbContext, entity: str, project: str, variables: dict[str, Any]) -> None:
        self.ctx, self.entity, self.project, self.variables = ctx, entity, project, variables

    def __call__(self, args: dict[str, Any]) -> dict[str, Any]:
        filters = self.ctx.visible_filters(self.entity, _filters(args.get("filters", self.variables.get("filters"))))
        order = str(args.get("order") or self.variables.get("order") or "-created_at")
        start, count = _page({**self.variables, **args})
        try:
            found = self.ctx.store.list_runs(
                self.entity, self.project, filters=filters, order=order, limit=count, offset=start
            )
            total = self.ctx.store.count_runs(self.entity, self.project, filters=filters)
        except UsageError as exc:
            raise ApiError(400, str(exc), field="filters") from None
        return _connection([run_node(self.ctx, r) for r in found], start, total)


def _filters(raw: Any) -> dict[str, Any] | None:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw else None
        except ValueError:
            raise ApiError(400, "`filters` is not a JSON object.", field="filters") from None
    if raw is not None and not isinstance(raw, dict):
        raise ApiError(400, "`filters` must be a JSON object.", field="filters")
    return raw or None


def _where(ctx: WandbContext, variables: dict[str, Any]) -> tuple[str, str]:
    entity = ctx.entity(variables.get("entity") or variables.get("entityName"))
    name = str(variables.get("project") or variables.get("projectName") or "uncategorized")
    ctx.check(entity, name)
    return entity, name


def runs(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """`project { runCount(filters:) runs(...) }`."""
    entity, name = _where(ctx, variables)

    class _Count:
        wants_args = True

        def __call__(self, args: dict[str, Any]) -> int:
            filters = ctx.visible_filters(entity, _filters(args.get("filters", variables.get("filters"))))
            try:
                return ctx.store.count_runs(entity, name, filters=filters)
            except UsageError as exc:
                raise ApiError(400, str(exc), field="filters") from None

    answer = {**_project_node(ctx, entity, name), "runCount": _Count(), "runs": _Runs(ctx, entity, name, variables)}
    return {"project": answer}


def one_run(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """`project { run(name:) { … } }`: any field of one run (history, files, artifacts…)."""
    entity, name = _where(ctx, variables)
    run_id = str(variables.get("name") or variables.get("run") or variables.get("runName") or "")
    run = ctx.sees(ctx.store.get_run(entity, name, run_id))  # a private run is null to non-members
    return {"project": {**_project_node(ctx, entity, name), "run": None if run is None else run_node(ctx, run)}}


# -- edits -------------------------------------------------------------------------------------------------
def upsert_bucket(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """`run.update()` and `run.summary.update()` edit the run their storage id names (never resume it).

    Everything else (the live client's upserts) is buckets.upsert_bucket's.
    """
    source = variables.get("input") if isinstance(variables.get("input"), dict) else variables
    assert isinstance(source, dict)
    storage_id = source.get("id")
    # The live client names its variable `displayName` and always sends `name`; `run.update()`
    # sends `display_name` (and `name` too), `run.summary.update()` only the id and the summary.
    edit = "display_name" in source or not source.get("name")
    if not edit or not isinstance(storage_id, str) or not storage_id:
        return buckets.upsert_bucket(ctx, variables)
    run = ctx.store.get_incarnation(storage_id)
    if run is None:
        raise ApiError(404, f"No run with id {storage_id!r}.", field="id")
    ctx.check(run.entity, run.project, write=True)
    fields: dict[str, Any] = {}
    for var, name in (
        ("displayName", "name"),
        ("display_name", "name"),
        ("notes", "notes"),
        ("groupName", "group"),
        ("jobType", "job_type"),
    ):
        if isinstance(source.get(var), str):
            fields[name] = source[var]
    if isinstance(source.get("description"), str) and "notes" not in fields:
        fields["notes"] = source["description"]
    if isinstance(source.get("tags"), list):
        fields["tags"] = [str(t) for t in source["tags"]]
    if source.get("config") is not None:
        fields["config"] = unwrap_config(source["config"])[0]
    if isinstance(source.get("summaryMetrics"), str):
        try:
            summary = json.loads(source["summaryMetrics"])
        except ValueError:
            raise ApiError(400, "`summaryMetrics` is not JSON.", field="summaryMetrics") from None
        if isinstance(summary, dict):
            # Keys the server adds for the client (`_wandb`, and `_step`/`_runtime` when the
            # run's summary had none) are not the user's.
            fields["summary"] = {
                k: v for k, v in summary.items() if k not in SPECIAL_KEYS or (k in run.summary and k != "_wandb")
            }
    if fields:
        try:
            ctx.store.update_run(run, **fields)
        except UsageError as exc:
            raise ApiError(409, str(exc)) from None
    edited = ctx.store.get_incarnation(storage_id) or run
    return {"upsertBucket": {"bucket": run_node(ctx, edited), "inserted": False}}


OPERATIONS = {
    "GetDefaultEntity": lambda ctx, variables: {"viewer": {"id": ctx.default_entity, "entity": ctx.default_entity}},
    "GetProjects": projects,
    "Projects": projects,
    "GetProject": project,
    "Runs": runs,
    "Run": one_run,
    "RunLightweight": one_run,
    "RunHistoryKeys": one_run,
    "RunSampledHistory": one_run,
    "RunFullHistory": one_run,
    "HistoryPage": one_run,
    "RunParquetHistory": one_run,
    "SampledHistoryPage": one_run,
    "RunFiles": one_run,
    "UpsertBucket": upsert_bucket,
}
