"""The API's one error shape, `{"error": {"code", "message", "field"?}}`, and the handlers producing it."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response

from branchline.errors import RunNotFoundError, SchemaError, UsageError

__all__ = ["ApiError", "ApiJSONResponse", "error_body", "install_error_handlers", "jsonable"]

log = logging.getLogger("branchline.server")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    500: "internal",
    503: "unavailable",
}
#: FastAPI's words for a request body it could not parse (bad JSON, or nested past recursion).
_UNPARSED_BODY = "There was an error parsing the body"


class ApiError(Exception):
    """An error answered to the client as-is: HTTP status, stable code, message and the field at fault."""

    def __init__(self, status: int, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.field = field


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    inner: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        inner["field"] = field
    inner.update(extra)
    return {"error": inner}


def jsonable(value: Any) -> Any:
    """`value` with non-finite floats spelled as strings ("NaN", "Infinity"): JSON has no such numbers."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


class ApiJSONResponse(JSONResponse):
    """Compact JSON; values JSON cannot carry (NaN, ±Infinity) become strings instead of a 500."""

    def render(self, content: Any) -> bytes:
        try:
            text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except ValueError:
            text = json.dumps(jsonable(content), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8")


def _respond(status: int, code: str, message: str, field: str | None = None, **extra: Any) -> Response:
    return ApiJSONResponse(error_body(code, message, field, **extra), status_code=status)


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie") and len(parts) > 1:
        parts = parts[1:]
    return ".".join(parts) or "request"


def install_error_handlers(app: FastAPI) -> None:
    """Route every failure, from validation to bugs, through the one error shape."""

    async def on_api_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return _respond(exc.status, exc.code, exc.message, exc.field)

    async def on_validation(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for err in exc.errors():
            problems.append({"field": _field_of(err.get("loc", ())), "message": str(err.get("msg", "invalid"))})
        first = problems[0] if problems else {"field": "request", "message": "invalid request"}
        message = f"{first['field']}: {first['message']}"
        return _respond(422, "invalid_request", message, first["field"], details=problems)

    async def on_http(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        # A body that cannot be parsed (or is too large) is the body's fault: say so.
        field = "body" if exc.status_code == 413 or message == _UNPARSED_BODY else None
        response = _respond(exc.status_code, _CODES.get(exc.status_code, "error"), message, field)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    async def on_usage(_request: Request, exc: Exception) -> Response:
        return _respond(400, "bad_request", str(exc))

    async def on_not_found(_request: Request, exc: Exception) -> Response:
        return _respond(404, "not_found", str(exc))

    async def on_schema(_request: Request, exc: Exception) -> Response:
        return _respond(503, "schema_out_of_date", str(exc))

    async def on_data(_request: Request, exc: Exception) -> Response:
        # The last line of defence: input checks should have named the field before the database
        # saw the value, but a refused value is still the request's fault, never a 500.
        log.warning("the store refused a value: %s", str(exc).splitlines()[0] if str(exc) else exc)
        return _respond(422, "invalid_request", "The store refused a value of this request.")

    async def on_disconnect(request: Request, _exc: Exception) -> Response:
        # The client went away mid-body (an abandoned upload): a normal abort, not a bug. Uploads
        # delete their temporary file on the way out, and nobody is left to read this answer.
        log.info("client disconnected during %s %s; request abandoned", request.method, request.url.path)
        return _respond(400, "client_disconnected", "The client closed the connection before sending the whole body.")

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return _respond(500, "internal", "Internal server error; the server log has the details.")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RunNotFoundError, on_not_found)
    app.add_exception_handler(UsageError, on_usage)
    app.add_exception_handler(SchemaError, on_schema)
    app.add_exception_handler(DataError, on_data)
    app.add_exception_handler(ClientDisconnect, on_disconnect)
    app.add_exception_handler(Exception, on_crash)
