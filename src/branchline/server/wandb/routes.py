"""`POST /graphql`: the W&B protocol's GraphQL endpoint.

Answers are what the client expects of W&B's server: `{"data": …}`, or HTTP 200 with `errors`
for a request we cannot serve (never a 5xx, which the client retries for minutes), and a 401 with
`errors` for a key we refuse (shown to the user at once).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool

from branchline.server.auth import Principal, get_principal
from branchline.server.errors import ApiError
from branchline.server.wandb.context import context_for
from branchline.server.wandb.graphql_doc import QueryError, introspects_only, parse_operation, project
from branchline.server.wandb.operations import OPERATIONS, introspection

__all__ = ["errors", "router"]

log = logging.getLogger("branchline.server")
router = APIRouter(tags=["wandb"], include_in_schema=False)


def errors(message: str, status: int = 200) -> JSONResponse:
    """A GraphQL error answer."""
    return JSONResponse({"data": None, "errors": [{"message": message}]}, status_code=status)


async def principal_or_error(request: Request) -> Principal | JSONResponse:
    """The caller, or the 401/403 answer the client shows at once."""
    try:
        return await get_principal(request)
    except ApiError as exc:
        return errors(exc.message, exc.status)


def _run(request: Request, principal: Principal, body: dict[str, Any]) -> JSONResponse:
    query = body.get("query")
    if not isinstance(query, str):
        return errors("The request has no GraphQL `query`.")
    variables = body.get("variables") if isinstance(body.get("variables"), dict) else {}
    try:
        op = parse_operation(query, body.get("operationName"), variables)
    except QueryError as exc:
        return errors(str(exc))
    resolver = OPERATIONS.get(op.name) or (introspection if introspects_only(op) else None)
    if resolver is None:
        log.info("W&B protocol: operation %r is not served", op.name)
        return errors(f"The operation {op.name!r} is not supported by this branchline server yet.")
    ctx = context_for(request, principal)
    try:
        return JSONResponse({"data": project(resolver(ctx, dict(op.variables)), op.selection, op)})
    except ApiError as exc:
        # 401 and 403 the client shows at once; anything else is the request's own error, not a retry.
        return errors(exc.message, exc.status if exc.status in (401, 403) else 200)
    except OperationalError:
        log.warning("W&B protocol: the store is unavailable during %s; the client will retry", op.name)
        return errors("The store is unavailable; retry.", 503)
    except Exception:
        # A bug, not a retryable state: answered as an error (the client would retry a 5xx for minutes).
        log.exception("W&B protocol: %s failed", op.name)
        return errors(f"The server could not answer {op.name!r}; see its log.")


@router.post("/graphql")
async def graphql(request: Request) -> JSONResponse:
    principal = await principal_or_error(request)
    if isinstance(principal, JSONResponse):
        return principal
    try:
        body = json.loads(await request.body())
    except ValueError:
        return errors("The body is not JSON.", 400)
    if not isinstance(body, dict):
        return errors("The body must be a JSON object with `query`.", 400)
    return await run_in_threadpool(_run, request, principal, body)
