"""Input the database cannot hold, refused at the door with the field named (a 4xx, never a 500).

PostgreSQL refuses a NUL character in any text and UTF-8 has no lone surrogates; both arrive
easily in JSON (`\\u0000`, `\\ud800`) and URLs (`%00`). Rather than patching each route:

- `guard_params` is an app-wide dependency checking every path and query parameter;
- `SafeText` is the string type for request models (the field is named by the validation error);
- `run_file_path` and `entry_path` are the one rule for paths a client names inside a run or an
  artifact: relative, '/'-separated, never leaving its root;
- `BodyLimit` caps the body of routes that parse it whole (the record ingest streams its own).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

from pydantic import AfterValidator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from branchline.server.errors import ApiError, ApiJSONResponse, error_body

__all__ = [
    "BEGIN_BODY_LIMIT",
    "BodyLimit",
    "SafeText",
    "entry_path",
    "guard_params",
    "run_file_path",
    "text_problem",
]

#: Largest `POST /api/v1/runs/begin` body: a config, notes and metadata, never megabytes of data.
BEGIN_BODY_LIMIT = 16 * 1024 * 1024

_SURROGATE = re.compile("[\ud800-\udfff]")
_DRIVE = re.compile(r"^[A-Za-z]:")


def text_problem(value: str) -> str | None:
    """Why the database cannot store `value` as text, or None when it can."""
    if "\x00" in value:
        return "cannot contain a NUL character (\\u0000)"
    if _SURROGATE.search(value):
        return "is not valid Unicode (a lone surrogate)"
    return None


def _storable_text(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(f"the text {problem}")
    return value


#: A request-model string the database can store; the validation error names the field.
SafeText = Annotated[str, AfterValidator(_storable_text)]


async def guard_params(request: Request) -> None:
    """Refuse any path or query parameter the database cannot hold, naming it."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and (problem := text_problem(value)) is not None:
            raise ApiError(422, f"{name} {problem}.", code="invalid_request", field=name)
    for name, value in request.query_params.multi_items():
        if (problem := text_problem(value)) is not None:
            raise ApiError(422, f"{name} {problem}.", code="invalid_request", field=name)


def _path_problem(path: str) -> str | None:
    """Why `path` is not a relative path inside its root, or None."""
    if not path:
        return "is empty"
    if (problem := text_problem(path)) is not None:
        return problem
    if path.startswith(("/", "\\")) or _DRIVE.match(path):
        return "is absolute"
    if ".." in re.split(r"[/\\]", path):
        return "leaves its root ('..')"
    return None


def run_file_path(path: str, field: str = "path") -> str:
    """A run file's path as uploaded: relative and '/'-separated (a backslash is not a separator
    on every system, so it is refused rather than guessed), with no empty or '..' part."""
    problem = _path_problem(path)
    if problem is None and "\\" in path:
        problem = "contains a backslash; separate directories with '/'"
    if problem is None and any(part.strip() == "" for part in path.split("/")):
        problem = "has an empty part"
    if problem is not None:
        raise ApiError(422, f"The file path {path!r} {problem}.", code="invalid_request", field=field)
    return path


def entry_path(path: str) -> str:
    """An artifact entry's path: relative, never leaving the download root (ValueError otherwise)."""
    problem = _path_problem(path)
    if problem is not None:
        raise ValueError(f"the entry path {path!r} {problem}: use a relative path without '..'")
    return path


_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]


class BodyLimit:
    """ASGI middleware: a body over its route's limit answers 413 naming the limit.

    A declared Content-Length over the limit is refused before anything is read; a chunked body is
    counted as it arrives and refused when it passes the limit.
    """

    def __init__(
        self,
        app: Callable[[_Scope, _Receive, _Send], Awaitable[None]],
        limits: dict[str, int],
        suffix_limits: dict[str, int] | None = None,
    ) -> None:
        self.app = app
        self.limits = limits
        #: Limits for every path ending so (routes with path parameters before the suffix).
        self.suffix_limits = suffix_limits or {}

    def _limit(self, path: str) -> int | None:
        if path in self.limits:
            return self.limits[path]
        return next((limit for suffix, limit in self.suffix_limits.items() if path.endswith(suffix)), None)

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        limit = self._limit(scope.get("path", "")) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, limit)
            return
        seen = 0

        async def counted() -> _Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Raised inside the route's body parsing, which passes an HTTPException through.
                    raise StarletteHTTPException(413, _too_large(limit))
            return message

        await self.app(scope, counted, send)

    @staticmethod
    async def _refuse(scope: _Scope, receive: _Receive, send: _Send, limit: int) -> None:
        # Read (and drop) what the client sends, so the connection stays usable for its next request.
        more = True
        while more:
            message = await receive()
            more = message["type"] == "http.request" and bool(message.get("more_body"))
        response = ApiJSONResponse(error_body("too_large", _too_large(limit), "body"), status_code=413)
        await response(scope, receive, send)


def _too_large(limit: int) -> str:
    return f"The request body is larger than the limit of {limit} bytes for this route."
