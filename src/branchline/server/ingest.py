"""The SDK's side of `/api/v1`: start runs, ingest journal records, heartbeats, crash reports.

The writer process sends the journal's records as they are (`[sequence, kind, *fields]`) in
batches; applying is idempotent on (session, sequence), so a retried batch answers the same
`applied_seq` and stores nothing twice. Records are checked here before the store sees them, so
malformed input is a 4xx that names the record and field, never a 500 from deep in the store.
"""

from __future__ import annotations

import itertools
import logging
import math
import zlib
from typing import Annotated, Any, Literal

import msgpack
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy.exc import DataError, IntegrityError
from starlette.concurrency import run_in_threadpool

from branchline.errors import RunNotFoundError, StoreError, UsageError
from branchline.runspec import RunSpec
from branchline.server.auth import AuthPrincipalDep, Principal, check_access
from branchline.server.errors import ApiError
from branchline.store import Store
from branchline.summaries import MetricDef
from branchline.vocab import RecordKind, RunState

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_RECORDS",
    "MAX_DECODED_BYTES",
    "RecordBatch",
    "RunSpecBody",
    "RunStartBody",
    "router",
    "validate_records",
]

log = logging.getLogger("branchline.server")

#: Largest request body accepted for a record batch, as sent (compressed or not).
MAX_BATCH_BYTES = 32 * 1024 * 1024
#: Largest batch once decompressed: a gzip bomb stops here.
MAX_DECODED_BYTES = 128 * 1024 * 1024
#: Most records in one batch; the SDK sends far fewer (see sdk/http_sink.py).
MAX_BATCH_RECORDS = 50_000

_INT32 = 2**31 - 1
_PID_MAX = 4_194_304  # Linux's ceiling for pid_max
_MAX_DEPTH = 32
_MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")

Name = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^/\\#?%:\x00]+$")]
RunId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[^\s:;,#?/'\x00]([^:;,#?/'\x00]*[^\s:;,#?/'\x00])?$"),
]
InternalId = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
Short = Annotated[str, StringConstraints(max_length=256)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=256)]

SessionPath = Annotated[
    str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$", description="Writer session id.")
]
IncarnationPath = Annotated[
    str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$", description="Incarnation id.")
]


# -- models --------------------------------------------------------------------------------------
class RunSpecBody(BaseModel):
    """What `init` asks for: a new run, a resume, a fork (`fork_from`) or a rewind (`resume_from`)."""

    model_config = ConfigDict(extra="ignore")

    entity: Name
    project: Name
    run_id: RunId
    incarnation_id: InternalId
    session_id: InternalId
    name: Short | None = None
    notes: Annotated[str, StringConstraints(max_length=1_000_000)] | None = None
    tags: Annotated[list[Tag], Field(max_length=1000)] | None = None
    group: Short | None = None
    job_type: Short | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    resume: Literal["allow", "must", "never", "auto"] | None = None
    fork_from: RunId | None = None
    resume_from: RunId | None = None
    branch_step: Annotated[int, Field(ge=0, le=_INT32 - 1)] | None = None
    host: Short = ""
    username: Short = ""
    pid: Annotated[int, Field(ge=0, le=_PID_MAX)] | None = None
    started_at: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("config", "metadata")
    @classmethod
    def _plain_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _clean_json(value)

    @field_validator("name", "notes", "group", "job_type", "host", "username")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return None if value is None else _clean_text(value)


class RunStartBody(BaseModel):
    """What the server answers to `begin`: where logging continues and what the run already has."""

    entity: str
    project: str
    run_id: str
    incarnation_id: str
    name: str
    notes: str
    tags: list[str]
    group: str
    job_type: str
    config: dict[str, Any]
    summary: dict[str, Any]
    rules: dict[str, Any]
    starting_step: int
    runtime_offset: float
    resumed: bool
    forked_from: dict[str, Any] | None
    warnings: list[str] = Field(default_factory=list)


class RecordBatch(BaseModel):
    """A batch of journal records, each `[sequence, kind, *fields]`, sequences strictly increasing."""

    records: Annotated[list[list[Any]], Field(max_length=MAX_BATCH_RECORDS)]


class Applied(BaseModel):
    applied_seq: int = Field(description="The highest sequence number stored for this session.")


class StopFlag(BaseModel):
    stop: bool = Field(description="Whether the run was asked to stop (the SDK interrupts training).")


class Ok(BaseModel):
    ok: bool = True


# -- value checks ------------------------------------------------------------------------------------
class _Bad(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _clean_text(text: str) -> str:
    # PostgreSQL text and JSONB cannot hold NUL; a lone surrogate cannot be encoded at all.
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _clean_json(value: dict[str, Any]) -> dict[str, Any]:
    try:
        cleaned = _clean_value(value, "", 0, allow_nonfinite=False)
    except _Bad as bad:
        raise ValueError(bad.message) from None
    assert isinstance(cleaned, dict)
    return cleaned


def _clean_value(value: Any, where: str, depth: int, *, allow_nonfinite: bool) -> Any:
    """`value` as plain JSON-like data (str keys, int64-range ints), or `_Bad` naming the spot."""
    kind = type(value)
    if kind is float:
        if not allow_nonfinite and not math.isfinite(value):
            raise _Bad(where, f"{where or 'value'} is {value}; JSON fields take finite numbers only")
        return value
    if kind is int:
        if not -(2**63) <= value < 2**64:
            raise _Bad(where, f"{where or 'value'} is an integer out of the 64-bit range")
        return value
    if kind is str:
        return _clean_text(value)
    if value is None or kind is bool:
        return value
    if depth >= _MAX_DEPTH:
        raise _Bad(where, f"{where or 'value'} is nested more than {_MAX_DEPTH} levels deep")
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _Bad(where, f"{where or 'value'} has a non-string key {key!r}")
            clean_key = _clean_text(key)
            out[clean_key] = _clean_value(
                item, f"{where}.{clean_key}" if where else clean_key, depth + 1, allow_nonfinite=allow_nonfinite
            )
        return out
    if kind is list:
        return [
            _clean_value(item, f"{where}[{i}]", depth + 1, allow_nonfinite=allow_nonfinite)
            for i, item in enumerate(value)
        ]
    raise _Bad(where, f"{where or 'value'} has unsupported type {kind.__name__}")


def _number(value: Any, field: str, *, finite: bool = True) -> float:
    if type(value) not in (int, float) or (finite and not math.isfinite(value)):
        raise _Bad(field, f"{field} must be a finite number")
    return float(value)


def _int(value: Any, field: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise _Bad(field, f"{field} must be an integer from {low} to {high}")
    return int(value)


def _text(value: Any, field: str, max_length: int) -> str:
    if type(value) is not str or len(value) > max_length:
        raise _Bad(field, f"{field} must be a string of at most {max_length} characters")
    return _clean_text(value)


def _object(value: Any, field: str, *, allow_nonfinite: bool) -> dict[str, Any]:
    if type(value) is not dict:
        raise _Bad(field, f"{field} must be an object")
    cleaned = _clean_value(value, field, 0, allow_nonfinite=allow_nonfinite)
    assert isinstance(cleaned, dict)
    return cleaned


def _flat_numbers(row: dict[Any, Any]) -> bool:
    """Whether `row` is the common case: short clean string keys, float/bool/int64 values."""
    for key, item in row.items():
        if type(key) is not str or len(key) > 512 or "\x00" in key:
            return False
        kind = type(item)
        if kind is float or kind is bool or (kind is int and -(2**63) <= item < 2**63):
            continue
        return False
    return True


def _history_row(value: Any, field: str) -> dict[str, Any]:
    """A logged row: numbers may be NaN or infinite (they are metrics); keys fit the key column."""
    if type(value) is not dict:
        raise _Bad(field, f"{field} must be an object")
    if _flat_numbers(value):
        return value
    row = _object(value, field, allow_nonfinite=True)
    _check_key_lengths(row, field, ())
    return row


def _check_key_lengths(row: dict[str, Any], field: str, prefix: tuple[str, ...]) -> None:
    for key, item in row.items():
        path = (*prefix, key)
        if isinstance(item, dict) and item and not item.get("_type"):
            _check_key_lengths(item, field, path)
        elif len(".".join(path)) > 512:
            raise _Bad(field, f"{field}: the key {'.'.join(path)[:80]!r}… is longer than 512 characters")


def _path(value: Any, field: str) -> list[str]:
    if type(value) is not list or not value or len(value) > _MAX_DEPTH:
        raise _Bad(field, f"{field} must be a non-empty list of key names")
    return [_text(part, f"{field}[{i}]", 512) for i, part in enumerate(value)]


_ARITY = {
    RecordKind.HEADER: 3,
    RecordKind.HISTORY: 6,
    RecordKind.SUMMARY: 4,
    RecordKind.CONFIG: 3,
    RecordKind.METRIC: 4,
    RecordKind.META: 3,
    RecordKind.EXIT: 5,
    RecordKind.PREEMPTING: 2,
    RecordKind.OUTPUT: 3,
    RecordKind.SYSTEM: 5,
    RecordKind.FILE: 6,
    RecordKind.ALERT: 6,
    RecordKind.METADATA: 3,
    RecordKind.ROW_SCHEMA: 4,
    RecordKind.ROW_BLOCK: 8,
}
_STATES = {s.value for s in RunState}
_META_FIELDS = {"name": 256, "notes": 1_000_000, "group": 256, "job_type": 256}


def _check_block(record: list[Any], f: str) -> list[Any]:
    """A ROW_BLOCK: keys, then sequences, steps, timestamps and runtimes (8 bytes per row each)
    and the values (8 bytes per row and key); the record's sequence is the last row's."""
    seq, kind, keys = record[0], record[1], record[2]
    if type(keys) is not list or len(keys) > 10_000:  # no keys: rows of `log({})`, still a step each
        raise _Bad(f"{f}.keys", f"{f}.keys must be a list of at most 10000 key names")
    clean_keys = [_text(k, f"{f}.keys[{i}]", 512) for i, k in enumerate(keys)]
    columns = record[3:8]
    if any(type(c) is not bytes for c in columns):
        raise _Bad(f"{f}.columns", f"{f}: sequences, steps, timestamps, runtimes and values must be bytes")
    rows = len(columns[0]) // 8
    if rows == 0 or any(len(c) != rows * 8 for c in columns[:4]) or len(columns[4]) != rows * 8 * len(keys):
        raise _Bad(f"{f}.columns", f"{f}: column lengths do not match {len(keys)} keys")
    seqs = [int.from_bytes(columns[0][i : i + 8], "little", signed=True) for i in range(0, len(columns[0]), 8)]
    if any(b <= a for a, b in itertools.pairwise(seqs)) or seqs[-1] != seq:
        raise _Bad(f"{f}.sequences", f"{f}: row sequences must increase and end at the record's sequence")
    return [seq, kind, clean_keys, *columns]


def _check_record(record: list[Any], f: str) -> list[Any]:
    seq, kind = record[0], RecordKind(record[1])
    if kind == RecordKind.ROW_BLOCK:
        return _check_block(record, f)
    if kind == RecordKind.ROW_SCHEMA:
        layout = _int(record[2], f"{f}.layout", 1, 65535)
        keys = record[3]
        if type(keys) is not list or len(keys) > 10_000:  # empty for the layout of `log({})`
            raise _Bad(f"{f}.keys", f"{f}.keys must be a list of at most 10000 key names")
        return [seq, kind, layout, [_text(k, f"{f}.keys[{i}]", 512) for i, k in enumerate(keys)]]
    if kind == RecordKind.HISTORY:
        return [
            seq,
            kind,
            _int(record[2], f"{f}.step", 0, _INT32 - 1),
            _number(record[3], f"{f}.timestamp"),
            _number(record[4], f"{f}.runtime"),
            _history_row(record[5], f"{f}.data"),
        ]
    if kind == RecordKind.SYSTEM:
        return [
            seq,
            kind,
            _number(record[2], f"{f}.timestamp"),
            _number(record[3], f"{f}.runtime"),
            _history_row(record[4], f"{f}.sample"),
        ]
    if kind == RecordKind.SUMMARY:
        sets, removes = record[2], record[3]
        if type(sets) is not list or type(removes) is not list:
            raise _Bad(f, f"{f}: a summary record carries a list of [path, value] sets and a list of paths")
        clean_sets = []
        for i, item in enumerate(sets):
            if type(item) is not list or len(item) != 2:
                raise _Bad(f"{f}.sets[{i}]", f"{f}.sets[{i}] must be [path, value]")
            clean_sets.append(
                [
                    _path(item[0], f"{f}.sets[{i}].path"),
                    _clean_value(item[1], f"{f}.sets[{i}].value", 0, allow_nonfinite=True),
                ]
            )
        return [seq, kind, clean_sets, [_path(p, f"{f}.removes[{i}]") for i, p in enumerate(removes)]]
    if kind in (RecordKind.CONFIG, RecordKind.METADATA, RecordKind.HEADER):
        return [seq, kind, _object(record[2], f"{f}.values", allow_nonfinite=kind != RecordKind.CONFIG)]
    if kind == RecordKind.METRIC:
        definition = _object(record[2], f"{f}.definition", allow_nonfinite=False)
        try:
            metric = MetricDef.from_json(definition)
        except (KeyError, TypeError, ValueError):
            raise _Bad(f"{f}.definition", f"{f}.definition must have a string `name`") from None
        if not isinstance(definition.get("name"), str) or not all(isinstance(s, str) for s in metric.summary):
            raise _Bad(f"{f}.definition", f"{f}.definition needs a string name and a list of summary names")
        if not isinstance(metric.step_metric, str | None):
            raise _Bad(f"{f}.definition", f"{f}.definition.step_metric must be a string")
        return [seq, kind, definition, bool(record[3])]
    if kind == RecordKind.META:
        values = _object(record[2], f"{f}.values", allow_nonfinite=False)
        for name, limit in _META_FIELDS.items():
            if name in values:
                _text(values[name], f"{f}.values.{name}", limit)
        if "tags" in values and (
            type(values["tags"]) is not list or not all(type(t) is str and len(t) <= 256 for t in values["tags"])
        ):
            raise _Bad(f"{f}.values.tags", f"{f}.values.tags must be a list of strings")
        return [seq, kind, values]
    if kind == RecordKind.EXIT:
        state = record[3]
        if state not in _STATES:
            raise _Bad(f"{f}.state", f"{f}.state must be one of {', '.join(sorted(_STATES))}")
        return [
            seq,
            kind,
            _int(record[2], f"{f}.exit_code", -_INT32, _INT32),
            state,
            _number(record[4], f"{f}.runtime"),
        ]
    if kind == RecordKind.PREEMPTING:
        return [seq, kind]
    if kind == RecordKind.OUTPUT:
        lines = record[2]
        if type(lines) is not list:
            raise _Bad(f"{f}.lines", f"{f}.lines must be a list of [stream, timestamp, text]")
        out = []
        for i, line in enumerate(lines):
            if type(line) is not list or len(line) != 3:
                raise _Bad(f"{f}.lines[{i}]", f"{f}.lines[{i}] must be [stream, timestamp, text]")
            out.append(
                [
                    _text(line[0], f"{f}.lines[{i}].stream", 8),
                    _number(line[1], f"{f}.lines[{i}].timestamp"),
                    _text(line[2], f"{f}.lines[{i}].text", 1_000_000),
                ]
            )
        return [seq, kind, out]
    if kind == RecordKind.FILE:
        return [
            seq,
            kind,
            _text(record[2], f"{f}.path", 1024),
            _int(record[3], f"{f}.size", 0, _INT32),
            _text(record[4], f"{f}.sha256", 64),
            _number(record[5], f"{f}.timestamp"),
        ]
    # RecordKind.ALERT, the last kind in _ARITY
    return [
        seq,
        kind,
        _text(record[2], f"{f}.title", 256),
        _text(record[3], f"{f}.text", 1_000_000),
        _text(record[4], f"{f}.level", 8),
        _number(record[5], f"{f}.timestamp"),
    ]


def validate_records(records: Any) -> list[list[Any]]:
    """Checked and cleaned records, or an ApiError (422) naming the first bad record and field."""
    if type(records) is not list:
        raise ApiError(422, "records must be a list of [sequence, kind, ...] lists.", field="records")
    if len(records) > MAX_BATCH_RECORDS:
        raise ApiError(
            413,
            f"A batch holds at most {MAX_BATCH_RECORDS} records; this one has {len(records)}. Send smaller batches.",
            code="too_large",
            field="records",
        )
    out: list[list[Any]] = []
    previous = 0
    history, int32 = int(RecordKind.HISTORY), _INT32
    for index, record in enumerate(records):
        # Fast path for the bulk of every batch, a history row of flat numbers: checked in
        # place, passed on as it is. Anything else takes the thorough path below.
        if type(record) is list and len(record) == 6 and record[1] == history and type(record[1]) is int:
            seq, step, ts, rt, data = record[0], record[2], record[3], record[4], record[5]
            if (
                type(seq) is int
                and previous < seq <= int32
                and type(step) is int
                and 0 <= step < int32
                and type(ts) is float
                and type(rt) is float
                and ts - ts == 0.0
                and rt - rt == 0.0
                and type(data) is dict
                and _flat_numbers(data)
            ):
                previous = seq
                out.append(record)
                continue
        f = f"records[{index}]"
        try:
            if type(record) is not list or len(record) < 2:
                raise _Bad(f, f"{f} must be a list [sequence, kind, ...]")
            seq = record[0]
            if type(seq) is not int or not 1 <= seq <= _INT32:
                raise _Bad(f"{f}.sequence", f"{f}: the sequence number must be an integer from 1 to {_INT32}")
            if seq <= previous:
                raise _Bad(
                    f"{f}.sequence",
                    f"{f}: sequence numbers must strictly increase within a batch ({seq} follows {previous})",
                )
            previous = seq
            kind = record[1]
            if type(kind) is not int or kind not in _ARITY:
                raise _Bad(f"{f}.kind", f"{f}: unknown record kind {kind!r}")
            if len(record) != _ARITY[RecordKind(kind)]:
                raise _Bad(
                    f, f"{f}: a {RecordKind(kind).name} record has {_ARITY[RecordKind(kind)]} fields, not {len(record)}"
                )
            out.append(_check_record(record, f))
        except _Bad as bad:
            raise ApiError(422, f"Malformed record: {bad.message}.", code="invalid_record", field=bad.field) from None
    return out


# -- routes -----------------------------------------------------------------------------------------
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or a bad API key."},
    403: {"description": "Not a member of the run's entity."},
    404: {"description": "No such run, session or incarnation."},
    409: {"description": "The request conflicts with the run's state."},
    413: {"description": "The batch is too large."},
    422: {"description": "The request is malformed."},
}

router = APIRouter(prefix="/api/v1", tags=["ingest"], responses=ERRORS)


def _store(request: Request) -> Store:
    store: Store | None = getattr(request.app.state, "store", None)
    if store is None:
        raise ApiError(503, "The store is not open: the app's lifespan has not started.", code="unavailable")
    return store


def _begin(store: Store, principal: Principal, spec: RunSpec) -> dict[str, Any]:
    check_access(principal, spec.entity, spec.project, write=True)
    owner = store.session_owner(spec.session_id)
    if owner is not None:
        # A retried begin (the answer was lost) replays; someone else's session is not ours to see.
        check_access(principal, owner[0], owner[1], write=True)
        if (owner[0], owner[1]) != (spec.entity, spec.project):
            raise ApiError(409, f"Session {spec.session_id} belongs to another project.", field="session_id")
    try:
        start = store.begin_run(spec)
    except RunNotFoundError as exc:
        raise ApiError(404, str(exc), code="run_not_found") from None
    except UsageError as exc:
        raise ApiError(409, str(exc), code="conflict") from None
    except IntegrityError:
        raise ApiError(
            409, "The run, incarnation or session id is already taken; retry with new ids.", code="conflict"
        ) from None
    except DataError as exc:
        raise ApiError(422, f"The store refused a value: {_first_line(exc)}", code="invalid_request") from None
    return start.to_json()


@router.post(
    "/runs/begin",
    response_model=RunStartBody,
    summary="Start a run: new, resumed, forked (fork_from) or rewound (resume_from)",
)
async def begin_run(body: RunSpecBody, request: Request, principal: AuthPrincipalDep) -> dict[str, Any]:
    spec = RunSpec.from_json(body.model_dump())
    return await run_in_threadpool(_begin, _store(request), principal, spec)


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BATCH_BYTES:
        raise _too_large(int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BATCH_BYTES:
            raise _too_large(size)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int) -> ApiError:
    return ApiError(
        413,
        f"The batch is {size} bytes; the limit is {MAX_BATCH_BYTES} bytes per request "
        f"(and {MAX_BATCH_RECORDS} records). Split it into smaller batches.",
        code="too_large",
    )


def _decode(raw: bytes, content_type: str, encoding: str) -> Any:
    if encoding in ("gzip", "deflate"):
        inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
        try:
            raw = inflater.decompress(raw, MAX_DECODED_BYTES + 1)
        except zlib.error as exc:
            raise ApiError(400, f"The body is not valid {encoding} data: {exc}.", code="bad_request") from None
        if len(raw) > MAX_DECODED_BYTES or inflater.unconsumed_tail:
            raise ApiError(
                413,
                f"The batch decompresses to more than {MAX_DECODED_BYTES} bytes. Split it into smaller batches.",
                code="too_large",
            )
    elif encoding not in ("", "identity"):
        raise ApiError(415, f"Content-Encoding {encoding!r} is not supported; use gzip or none.")
    if content_type in _MSGPACK_TYPES:
        try:
            data = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        except Exception as exc:  # msgpack raises several unrelated types for bad input
            raise ApiError(400, f"The body is not valid msgpack: {type(exc).__name__}.", code="bad_request") from None
    elif content_type in ("application/json", ""):
        import json

        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise ApiError(400, f"The body is not valid JSON: {exc}.", code="bad_request") from None
    else:
        raise ApiError(415, f"Content-Type {content_type!r} is not supported; use application/msgpack or JSON.")
    if isinstance(data, dict) and "records" in data:
        data = data["records"]
    return data


def _apply(store: Store, principal: Principal, session_id: str, raw: bytes, content_type: str, encoding: str) -> int:
    owner = store.session_owner(session_id)
    if owner is None:
        raise ApiError(
            404,
            f"Unknown writer session {session_id!r}: start the run (POST /api/v1/runs/begin) first.",
            field="session_id",
        )
    check_access(principal, owner[0], owner[1], write=True)
    records = validate_records(_decode(raw, content_type, encoding))
    try:
        return store.apply(session_id, records)
    except (StoreError, DataError, TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        # The records passed the checks above, so what is left is data the store cannot hold.
        raise ApiError(422, f"The records could not be stored: {_first_line(exc)}", code="invalid_record") from None


@router.post(
    "/sessions/{session_id}/records",
    response_model=Applied,
    summary="Store a batch of journal records (msgpack or JSON, optionally gzip); idempotent",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": RecordBatch.model_json_schema()},
                "application/msgpack": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def post_records(session_id: SessionPath, request: Request, principal: AuthPrincipalDep) -> dict[str, Any]:
    raw = await _read_body(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    encoding = request.headers.get("content-encoding", "").strip().lower()
    applied = await run_in_threadpool(_apply, _store(request), principal, session_id, raw, content_type, encoding)
    return {"applied_seq": applied}


def _owned_incarnation(store: Store, principal: Principal, incarnation_id: str) -> None:
    owner = store.incarnation_owner(incarnation_id)
    if owner is None:
        raise ApiError(404, f"No incarnation {incarnation_id!r}.", field="incarnation_id")
    check_access(principal, owner[0], owner[1], write=True)


def _heartbeat(store: Store, principal: Principal, incarnation_id: str) -> bool:
    _owned_incarnation(store, principal, incarnation_id)
    return store.heartbeat(incarnation_id)


@router.post(
    "/incarnations/{incarnation_id}/heartbeat",
    response_model=StopFlag,
    summary="The run is alive; answers whether it was asked to stop",
)
async def heartbeat(incarnation_id: IncarnationPath, request: Request, principal: AuthPrincipalDep) -> dict[str, Any]:
    stop = await run_in_threadpool(_heartbeat, _store(request), principal, incarnation_id)
    return {"stop": stop}


def _crashed(store: Store, principal: Principal, incarnation_id: str, session_id: str | None) -> None:
    _owned_incarnation(store, principal, incarnation_id)
    store.mark_crashed(incarnation_id, session_id)


@router.post(
    "/incarnations/{incarnation_id}/crashed",
    response_model=Ok,
    summary="The training process is gone without finishing: mark the run crashed",
)
async def crashed(
    incarnation_id: IncarnationPath,
    request: Request,
    principal: AuthPrincipalDep,
    session_id: Annotated[str | None, Query(max_length=64, pattern=r"^[0-9a-f]+$")] = None,
) -> dict[str, Any]:
    await run_in_threadpool(_crashed, _store(request), principal, incarnation_id, session_id)
    return {"ok": True}


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0][:300] if text else type(exc).__name__
