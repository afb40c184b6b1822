"""`branchline runs`: list, show, delete, move and export runs (through the public `Api`)."""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from branchline.cli.common import store_options

if TYPE_CHECKING:
    from branchline.api import Api, Run

__all__ = ["runs"]


@contextmanager
def _friendly_errors() -> Iterator[None]:
    """branchline errors become one clear line and exit status 1, not a traceback."""
    from branchline.errors import Error

    try:
        yield
    except Error as exc:
        raise click.ClickException(str(exc)) from None


def _api(root_dir: Path | None, store_url: str | None, entity: str | None, project: str | None) -> Api:
    from branchline.api import Api

    overrides = {"root_dir": str(root_dir) if root_dir else None, "store_url": store_url}
    overrides.update(entity=entity, project=project)
    return Api(overrides={k: v for k, v in overrides.items() if v is not None})


def _entity_option(func: Any) -> Any:
    return click.option("--entity", "-e", help="Entity of paths that do not name one (default: your user name).")(func)


def _project_option(func: Any) -> Any:
    return click.option("--project", "-p", help="Project of run paths given as a bare run id.")(func)


def _jsonable(value: Any) -> Any:
    """JSON without NaN/Infinity tokens (most JSON readers reject them): they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _dumps(value: Any, indent: int | None = None) -> str:
    return json.dumps(_jsonable(value), indent=indent, default=str, allow_nan=False)


def _sort_column(sort: str) -> str | None:
    key = sort.lstrip("+-")
    return key if key.startswith(("config.", "summary_metrics.", "summary.")) else None


def _lookup(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _run_record(run: Run) -> dict[str, Any]:
    return {
        "path": "/".join(run.path),
        "id": run.id,
        "name": run.name,
        "state": run.state,
        "created_at": run.created_at,
        "heartbeat_at": run.heartbeat_at,
        "runtime": run.runtime,
        "duration": run.duration,
        "private": run.private,
        "tags": run.tags,
        "group": run.group,
        "job_type": run.job_type,
        "notes": run.notes,
        "host": run.host,
        "last_step": run.last_step,
        "forked_from": run.forked_from,
        "config": run.config,
        "summary": run.summary,
    }


@click.group()
def runs() -> None:
    """List, inspect, delete, move and export runs."""


@runs.command("list")
@click.argument("project", required=False)
@store_options
@_entity_option
@click.option("--filter", "filter_json", help='MongoDB-style filter as JSON, e.g. \'{"state": "finished"}\'.')
@click.option(
    "--sort",
    default="-created_at",
    show_default=True,
    help="Order: [+|-]created_at, heartbeat_at, config.<key> or summary_metrics.<key>.",
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=0), help="At most N runs (0: all).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
def list_runs(
    project: str | None,
    root_dir: Path | None,
    store_url: str | None,
    entity: str | None,
    filter_json: str | None,
    sort: str,
    limit: int,
    as_json: bool,
) -> None:
    """List the runs of PROJECT (`entity/project` or `project`) as a table.

    Without PROJECT, the default project (BRANCHLINE_PROJECT) is listed.
    """
    filters: dict[str, Any] | None = None
    if filter_json:
        try:
            filters = json.loads(filter_json)
        except ValueError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--filter") from None
    with _friendly_errors():
        api = _api(root_dir, store_url, entity, None)
        per_page = min(limit, 500) if limit else 500
        found = api.runs(project, filters=filters, order=sort, per_page=per_page)
        total = len(found)
        shown = found[: limit or total]
        if as_json:
            click.echo(_dumps([_run_record(run) for run in shown], indent=2))
            return
        _print_table(shown, total, _sort_column(sort), f"{found.entity}/{found.project}")


def _print_table(shown: list[Run], total: int, extra: str | None, where: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{where}: {len(shown)} of {total} runs", title_justify="left")
    table.add_column("ID", no_wrap=True)
    table.add_column("Name")
    table.add_column("State")
    table.add_column("Created (UTC)", no_wrap=True)
    table.add_column("Runtime", justify="right")
    table.add_column("Duration", justify="right")
    table.add_column("Tags")
    if extra:
        table.add_column(extra, justify="right")
    for run in shown:
        cells = [
            run.id,
            run.name,
            run.state,
            run.created_at.replace("T", " "),
            f"{run.runtime:.1f}s",
            f"{run.duration:.1f}s",
            ", ".join(run.tags),
        ]
        if extra:
            source = run.config if extra.startswith("config.") else run.summary
            value = _lookup(source, extra.split(".", 1)[1])
            cells.append("" if value is None else str(value))
        table.add_row(*cells)
    Console().print(table)


def _resolve(api: Api, path: str) -> Run:
    return api.run(path)


@runs.command("show")
@click.argument("path")
@store_options
@_entity_option
@_project_option
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
def show(
    path: str,
    root_dir: Path | None,
    store_url: str | None,
    entity: str | None,
    project: str | None,
    as_json: bool,
) -> None:
    """Show one run: its fields, lineage, config, summary and history keys.

    PATH is `entity/project/run_id`, `project/run_id` or a run id with --project.
    """
    with _friendly_errors():
        run = _resolve(_api(root_dir, store_url, entity, project), path)
        record = _run_record(run)
        record["archived_incarnations"] = len(run.archived)
        record["forks"] = ["/".join(fork.path) for fork in run.forks]
        record["history_keys"] = sorted(run.history_keys["keys"])
        if as_json:
            click.echo(_dumps(record, indent=2))
            return
        for field in (
            "path",
            "name",
            "state",
            "created_at",
            "heartbeat_at",
            "runtime",
            "duration",
            "private",
            "last_step",
            "tags",
            "group",
            "job_type",
            "host",
            "notes",
        ):
            value = record[field]
            if isinstance(value, list):
                value = ", ".join(value)
            click.echo(f"{field + ':':<15} {value}")
        origin = run.forked_from
        if origin is not None:
            gone = " (deleted)" if origin.get("deleted") else ""
            click.echo(f"{'forked from:':<15} {origin['path']} at step {origin['step']} ({origin['kind']}){gone}")
        click.echo(f"{'archived:':<15} {record['archived_incarnations']} incarnation(s)")
        click.echo(f"{'forks:':<15} {', '.join(record['forks']) or '-'}")
        click.echo(f"{'history keys:':<15} {', '.join(record['history_keys']) or '-'}")
        click.echo("config:")
        click.echo(_dumps(run.config, indent=2))
        click.echo("summary:")
        click.echo(_dumps(run.summary, indent=2))


@runs.command("delete")
@click.argument("paths", nargs=-1, required=True)
@store_options
@_entity_option
@_project_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def delete(
    paths: tuple[str, ...],
    root_dir: Path | None,
    store_url: str | None,
    entity: str | None,
    project: str | None,
    yes: bool,
) -> None:
    """Delete runs and their history, files and console output.

    Runs forked from a deleted run stay readable: the history they inherited is kept.
    Asks for confirmation unless --yes.
    """
    with _friendly_errors():
        api = _api(root_dir, store_url, entity, project)
        targets = [_resolve(api, path) for path in paths]
        for run in targets:
            click.echo(f"  {'/'.join(run.path)}  {run.name}  ({run.state})")
        if not yes and not click.confirm(f"Delete {len(targets)} run(s)?", default=False):
            click.echo("Nothing deleted.")
            raise SystemExit(1)
        for run in targets:
            forks = len(run.forks)
            run.delete()
            kept = f"; {forks} fork(s) keep their inherited history" if forks else ""
            click.echo(f"Deleted {'/'.join(run.path)}{kept}.")


@runs.command("move")
@click.argument("path")
@click.option("--to", "target", required=True, help="Destination: `project` or `entity/project`.")
@store_options
@_entity_option
@_project_option
def move(
    path: str,
    target: str,
    root_dir: Path | None,
    store_url: str | None,
    entity: str | None,
    project: str | None,
) -> None:
    """Move a run (history, files, lineage links) to another project."""
    from branchline.api.paths import parse_project_path

    with _friendly_errors():
        run = _resolve(_api(root_dir, store_url, entity, project), path)
        old = "/".join(run.path)
        to_entity, to_project = parse_project_path(target, entity=run.entity)
        run.move(to_project, entity=to_entity)
        click.echo(f"Moved {old} to {'/'.join(run.path)}.")


def _cell(value: Any) -> Any:
    return _dumps(value) if isinstance(value, dict | list) else value


def _write_rows(fmt: str, rows: Iterator[dict[str, Any]], columns: list[str], out: TextIO) -> int:
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=columns, restval="", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _cell(value) for key, value in row.items()})
            count += 1
    else:
        for row in rows:
            out.write(_dumps(row) + "\n")
            count += 1
    return count


def _write_parquet(run: Run, keys: list[str] | None, output: Path) -> int:
    try:
        import pandas  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError:
        raise click.ClickException(
            "Parquet export needs pandas and pyarrow: pip install 'branchline[parquet]'."
        ) from None
    frame = run.history(samples=None, keys=keys, pandas=True)
    for column in frame.columns:
        if frame[column].dtype == object:
            # Arrow needs one type per column: non-string values (dicts, lists, mixed) become JSON text.
            frame[column] = [_parquet_cell(value) for value in frame[column]]
    frame.to_parquet(output, index=False)
    return len(frame)


def _parquet_cell(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, str) else _dumps(value)


@runs.command("export")
@click.argument("path")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet", "jsonl"]),
    required=True,
    help="csv and jsonl stream row by row; parquet writes one table.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write. Default: standard output for csv/jsonl, <run_id>.parquet for parquet.",
)
@click.option("--keys", help="Comma-separated history keys (default: all); only rows holding all of them.")
@store_options
@_entity_option
@_project_option
def export(
    path: str,
    fmt: str,
    output: Path | None,
    keys: str | None,
    root_dir: Path | None,
    store_url: str | None,
    entity: str | None,
    project: str | None,
) -> None:
    """Export a run's full-resolution history as CSV, Parquet or JSON lines.

    Non-finite numbers are written as nan/inf (CSV), null (JSON lines) or NaN (Parquet).
    """
    key_list = [k.strip() for k in keys.split(",") if k.strip()] if keys else None
    with _friendly_errors():
        run = _resolve(_api(root_dir, store_url, entity, project), path)
        if fmt == "parquet":
            target = output or Path(f"{run.id}.parquet")
            count = _write_parquet(run, key_list, target)
            click.echo(f"Wrote {count} rows to {target}.", err=True)
            return
        columns = ["_step", *(key_list or sorted(run.history_keys["keys"]))]
        if key_list is not None:
            columns = list(dict.fromkeys(columns))
        scan_keys = None if key_list is None else list(dict.fromkeys(["_step", *key_list]))
        rows = run.scan_history(keys=scan_keys)
        if output is None or str(output) == "-":
            count = _write_rows(fmt, rows, columns, sys.stdout)
        else:
            with output.open("w", newline="") as handle:
                count = _write_rows(fmt, rows, columns, handle)
            click.echo(f"Wrote {count} rows to {output}.", err=True)
