"""The SDK's side of `/api/v1`: start runs, ingest journal records, heartbeats, crash reports.

The writer process sends the journal's records as they are (`[sequence, kind, *fields]`) in
batches; applying is idempotent on (session, sequence), so a retried batch answers the same
`applied_seq` and stores nothing twice. Records are checked first (server/ingest_records.py, from
the declaration in records.py), so malformed input is a 4xx that names the record and field. A
record that passes the checks but that the store still cannot hold is set aside, the rest of the
batch is stored, and the answer lists it under `rejected`.
"""

from __future__ import annotations

import logging
import zlib
from typing import Annotated, Any

import msgpack
from fastapi import APIRouter, Query, Request
from sqlalchemy.exc import DataError, IntegrityError
from starlette.concurrency import run_in_threadpool

from branchline.errors import RunNotFoundError, StoreError, UsageError
from branchline.rejects import Rejected
from branchline.runspec import RunSpec, RunStart
from branchline.server.auth import AuthPrincipalDep, Principal, check_access
from branchline.server.errors import ApiError
from branchline.server.ingest_models import (
    MAX_BATCH_RECORDS,
    Applied,
    IncarnationPath,
    Ok,
    RecordBatch,
    RunSpecBody,
    SessionPath,
    StopFlag,
)
from branchline.server.ingest_records import validate_records
from branchline.store import Store
from branchline.store.stops import NOTE_ESCALATED

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_RECORDS",
    "MAX_DECODED_BYTES",
    "IncarnationPath",
    "RecordBatch",
    "RunSpecBody",
    "router",
    "validate_records",
]

log = logging.getLogger("branchline.server")

#: Largest request body accepted for a record batch, as sent (compressed or not).
MAX_BATCH_BYTES = 32 * 1024 * 1024
#: Largest batch once decompressed: a gzip bomb stops here.
MAX_DECODED_BYTES = 128 * 1024 * 1024
_MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")


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
    response_model=RunStart,  # the store's answer is the wire shape
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


def _apply(
    store: Store, principal: Principal, session_id: str, raw: bytes, content_type: str, encoding: str
) -> dict[str, Any]:
    owner = store.session_owner(session_id)
    if owner is None:
        raise ApiError(
            404,
            f"Unknown writer session {session_id!r}: start the run (POST /api/v1/runs/begin) first.",
            field="session_id",
        )
    check_access(principal, owner[0], owner[1], write=True)
    records = validate_records(_decode(raw, content_type, encoding))
    rejected: list[Rejected] = []
    try:
        applied = store.apply(session_id, records, rejected=rejected)
    except StoreError as exc:
        # The run's state, not the records (e.g. its incarnation was deleted): the records are fine.
        raise ApiError(409, f"The records could not be stored: {_first_line(exc)}", code="conflict") from None
    except (DataError, TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        # The store sets aside the records it cannot hold, so this is an error it could not pin on one.
        raise ApiError(422, f"The records could not be stored: {_first_line(exc)}", code="invalid_record") from None
    for record in rejected:
        log.warning("%s", record.message(f"session {session_id}"))
    if not rejected:
        return {"applied_seq": applied}  # the common answer, as before `rejected` existed
    return {"applied_seq": applied, "rejected": [r.to_json() for r in rejected]}


@router.post(
    "/sessions/{session_id}/records",
    response_model=Applied,
    response_model_exclude_unset=True,
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
    return await run_in_threadpool(_apply, _store(request), principal, session_id, raw, content_type, encoding)


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


def _killed(store: Store, principal: Principal, incarnation_id: str) -> None:
    _owned_incarnation(store, principal, incarnation_id)
    store.mark_killed(incarnation_id, NOTE_ESCALATED)


@router.post(
    "/incarnations/{incarnation_id}/killed",
    response_model=Ok,
    summary="A stop was ignored and the writer terminated the training process: mark the run killed",
)
async def killed(incarnation_id: IncarnationPath, request: Request, principal: AuthPrincipalDep) -> dict[str, Any]:
    await run_in_threadpool(_killed, _store(request), principal, incarnation_id)
    return {"ok": True}
