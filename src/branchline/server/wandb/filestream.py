"""`POST /files/{entity}/{project}/{run}/file_stream`: a run's live data from the wandb client.

Each file in the body is a run of lines starting at an absolute `offset`:

- `wandb-history.jsonl`: one history row per line → HISTORY records (the journal's own), on the
  `history` stream, sequence = offset + 1, so a retried or replayed chunk stores nothing twice;
- `wandb-events.jsonl`: system metrics → SYSTEM records on the `events` stream (`system.` dropped
  from the keys, as our SDK stores them);
- `output.log`: console lines, written at their line numbers (a progress bar rewrites its line);
- `wandb-summary.json`: the whole current summary, replacing the previous one;
- `complete` / `exitcode`: the run's end (finished or failed), `preempting`: preempting.

The answer carries `stopped: true` once the run was asked to stop from the web app or the Api.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import re
import time
from array import array
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool

from branchline.records import INT32, MAX_KEY_LENGTH, MAX_KEYS
from branchline.server.auth import Principal
from branchline.server.errors import ApiError
from branchline.server.wandb.context import SPECIAL_KEYS, WandbContext, context_for
from branchline.server.wandb.routes import errors, principal_or_error
from branchline.vocab import RecordKind, RunState

__all__ = ["router"]

log = logging.getLogger("branchline.server")
router = APIRouter(tags=["wandb"], include_in_schema=False)
Segment = Annotated[str, Path(min_length=1, max_length=128)]
#: Largest body accepted (the client sends at most 10 MiB per request), compressed or not.
MAX_BODY = 64 * 1024 * 1024
#: Keys the store keeps for itself; a row holding one is never a float block.
_STORE_KEYS = frozenset({"_step", "_timestamp", "_runtime"})
_FLOAT_ONLY = {float}
_LEGACY_LINE = re.compile(r"^(ERROR )?(\d{4}-\d\d-\d\dT[\d:.]+)\s?(.*)$", re.S)


def _loads(line: str) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        pass
    try:  # NaN and Infinity, which orjson refuses
        return json.loads(line)
    except ValueError:
        return None


def _history(offset: int, lines: list[str]) -> list[list[Any]]:
    """HISTORY records, sequence = line offset + 1; consecutive rows of plain floats with the
    same key set become one ROW_BLOCK (columns, as our SDK's writer sends them), which the store
    applies without looking at each row: most of a long run's lines are such rows."""
    records: list[list[Any]] = []
    block = _Block()
    for i, line in enumerate(lines):
        row = _loads(line)
        if not isinstance(row, dict):
            continue
        step = row.pop("_step", None)
        runtime = _number(row.pop("_runtime", 0.0))
        stamp = _number(row.pop("_timestamp", time.time()))
        row.pop("_wandb", None)
        if type(step) is not int:
            continue
        if not block.take(offset + i + 1, step, stamp, runtime, row):
            block.flush(records)
            if not block.take(offset + i + 1, step, stamp, runtime, row):
                records.append([offset + i + 1, int(RecordKind.HISTORY), step, stamp, runtime, row])
    block.flush(records)
    return records


class _Block:
    """A run of float rows with one key set, gathered into a ROW_BLOCK record."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.keys: tuple[str, ...] = ()
        self.key_set: frozenset[str] = frozenset()
        self.seqs, self.steps = array("q"), array("q")
        self.stamps, self.runtimes, self.values = array("d"), array("d"), array("d")

    def take(self, seq: int, step: int, stamp: float, runtime: float, row: dict[str, Any]) -> bool:
        """Add the row when it is plain floats with this block's keys (any plain keys when empty)."""
        if not row or not 0 <= step < INT32 or set(map(type, row.values())) != _FLOAT_ONLY:
            return False
        if self.seqs:
            # The client writes each line's keys in any order (Go maps): a block is a key *set*.
            if row.keys() != self.key_set:
                return False
        elif _plain_keys(row):
            self.keys, self.key_set = tuple(row), frozenset(row)
        else:
            return False
        self.seqs.append(seq)
        self.steps.append(step)
        self.stamps.append(stamp)
        self.runtimes.append(runtime)
        self.values.extend(map(row.__getitem__, self.keys))
        return True

    def flush(self, records: list[list[Any]]) -> None:
        if len(self.seqs) == 1:  # a lone row is a plain HISTORY record
            row = dict(zip(self.keys, self.values, strict=True))
            first = [self.steps[0], self.stamps[0], self.runtimes[0], row]
            records.append([self.seqs[0], int(RecordKind.HISTORY), *first])
        elif self.seqs:
            columns = (self.seqs, self.steps, self.stamps, self.runtimes, self.values)
            records.append([self.seqs[-1], int(RecordKind.ROW_BLOCK), list(self.keys), *(c.tobytes() for c in columns)])
        self.reset()


def _plain_keys(row: dict[str, Any]) -> bool:
    """Keys a block may carry as they are: the others take the per-row path, which cleans them."""
    if len(row) > MAX_KEYS or _STORE_KEYS & row.keys():
        return False
    return all(0 < len(k) <= MAX_KEY_LENGTH and "\x00" not in k for k in row)


def _events(offset: int, lines: list[str]) -> list[list[Any]]:
    records: list[list[Any]] = []
    for i, line in enumerate(lines):
        row = _loads(line)
        if not isinstance(row, dict):
            continue
        sample = {
            key.removeprefix("system."): value
            for key, value in row.items()
            if key not in SPECIAL_KEYS and isinstance(value, int | float) and not isinstance(value, bool)
        }
        stamp, runtime = _number(row.get("_timestamp", time.time())), _number(row.get("_runtime", 0.0))
        records.append([offset + i + 1, int(RecordKind.SYSTEM), stamp, runtime, sample])
    return records


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else 0.0


def console_line(line: str) -> list[Any]:
    """`[stream, timestamp, text]` of a console line, plain (`[ERROR ]<iso time> text`) or structured JSON."""
    line = line.removesuffix("\n")  # older clients end each line with its newline
    if line.startswith("{"):
        data = _loads(line)
        if isinstance(data, dict) and "content" in data:
            stream = "stderr" if data.get("level") == "error" else "stdout"
            return [stream, _iso_seconds(str(data.get("ts") or "")), str(data["content"])]
    match = _LEGACY_LINE.match(line)
    if match is None:
        return ["stdout", time.time(), line]
    return ["stderr" if match.group(1) else "stdout", _iso_seconds(match.group(2)), match.group(3)]


def _iso_seconds(text: str) -> float:
    import datetime as dt

    try:
        parsed = dt.datetime.fromisoformat(text.rstrip("Z"))
    except ValueError:
        return time.time()
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def _summary(ctx: WandbContext, incarnation_id: str, line: str) -> list[Any] | None:
    """A SUMMARY record replacing the summary with `line` (the client's whole summary)."""
    new = _loads(line)
    if not isinstance(new, dict):
        return None
    current = ctx.store.get_incarnation(incarnation_id)
    old = current.summary if current is not None else {}
    sets = [[[key], value] for key, value in new.items() if key not in SPECIAL_KEYS]
    removes = [[key] for key in old if key not in SPECIAL_KEYS and key not in new]
    return [sets, removes]


def _store(ctx: WandbContext, entity: str, project: str, run_id: str, body: dict[str, Any]) -> dict[str, Any]:
    run = ctx.require_run(ctx.entity(entity), project, run_id, write=True)
    inc = run.incarnation_id
    stopped = ctx.store.heartbeat(inc)
    found = body.get("files")
    files: dict[str, Any] = found if isinstance(found, dict) else {}
    control: list[tuple[RecordKind, list[Any]]] = []
    for name, chunk in files.items():
        if not isinstance(chunk, dict):
            continue
        offset = chunk["offset"] if type(chunk.get("offset")) is int else 0
        lines = [str(line) for line in chunk.get("content") or [] if isinstance(line, str)]
        if not lines or offset < 0:
            continue
        if name == "wandb-history.jsonl":
            ctx.apply_lines(inc, "history", _history(offset, lines))
        elif name == "wandb-events.jsonl":
            ctx.apply_lines(inc, "events", _events(offset, lines))
        elif name == "output.log":
            ctx.store.set_console_lines(inc, offset, [console_line(line) for line in lines])
        elif name == "wandb-summary.json":
            summary = _summary(ctx, inc, lines[-1])
            if summary is not None:
                control.append((RecordKind.SUMMARY, summary))
    if body.get("preempting"):
        control.append((RecordKind.PREEMPTING, []))
    if body.get("complete"):
        code = body.get("exitcode") if type(body.get("exitcode")) is int else 0
        state = RunState.FINISHED if code == 0 else RunState.FAILED
        view = ctx.store.get_incarnation(inc)
        control.append((RecordKind.EXIT, [code, state.value, float(view.runtime if view else 0.0)]))
    ctx.apply_control(inc, control)
    return {"exitcode": None, "limits": {}, **({"stopped": True} if stopped else {})}


def _decode(raw: bytes, encoding: str) -> Any:
    if encoding == "gzip":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ApiError(400, f"The body is not valid gzip data: {exc}.") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:  # NaN and Infinity, which orjson refuses
        return json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, f"The body is not JSON: {exc}.") from None


def _handle(
    request: Request, principal: Principal, path: tuple[str, str, str], raw: bytes, encoding: str
) -> dict[str, Any]:
    body = _decode(raw, encoding)
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object.")
    return _store(context_for(request, principal), *path, body)


@router.post("/files/{entity}/{project}/{run_id}/file_stream")
async def file_stream(entity: Segment, project: Segment, run_id: Segment, request: Request) -> JSONResponse:
    principal = await principal_or_error(request)
    if isinstance(principal, JSONResponse):
        return principal
    raw = await request.body()
    if len(raw) > MAX_BODY:
        return errors(f"The body is larger than {MAX_BODY} bytes.", 413)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    try:
        answer = await run_in_threadpool(_handle, request, principal, (entity, project, run_id), raw, encoding)
    except ApiError as exc:
        return errors(exc.message, exc.status)
    except OperationalError:
        return errors("The store is unavailable; retry.", 503)  # the client resends the same offsets
    except Exception:
        # A bug: say so in the log, and let the client go on (it would resend a 5xx'd chunk for hours).
        log.exception("W&B protocol: file_stream of %s/%s/%s failed", entity, project, run_id)
        return JSONResponse({"exitcode": None, "limits": {}})
    return JSONResponse(answer)
