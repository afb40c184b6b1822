"""A database connection dropped mid-request (PostgreSQL restarted, or the connection terminated) is
not the client's fault and not a bug: a read is run once more on a fresh connection, and anything
else is answered 503 with Retry-After (the SDK retries it), instead of a 500 that drops the
keep-alive connection.

The pool's pre-ping (store/engine.py) already replaces connections that died while idle; this covers
the ones that die while a query runs on them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sqlalchemy.exc import DBAPIError

from branchline.server.errors import ApiJSONResponse, error_body

__all__ = ["RetryDroppedConnections"]

log = logging.getLogger("branchline.server")

_Message = MutableMapping[str, Any]
_Scope = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_READS = frozenset({"GET", "HEAD"})


class RetryDroppedConnections:
    """ASGI middleware: retry a read once, or answer 503, when the database dropped the connection."""

    def __init__(self, app: Callable[[_Scope, _Receive, _Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        received: list[_Message] = []

        async def recording() -> _Message:
            message = await receive()
            received.append(message)
            return message

        async def tracking(message: _Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, recording, tracking)
            return
        except DBAPIError as exc:
            if started or not exc.connection_invalidated:
                raise
            log.warning("the database dropped a connection during %s %s", scope["method"], scope["path"])
            if scope["method"] not in _READS:
                await _unavailable(scope, send)
                return
        replay = list(received)

        async def replaying() -> _Message:
            return replay.pop(0) if replay else await receive()

        started = False
        try:
            await self.app(scope, replaying, tracking)
        except DBAPIError as exc:
            if started or not exc.connection_invalidated:
                raise
            await _unavailable(scope, send)


async def _unavailable(scope: _Scope, send: _Send) -> None:
    body = error_body("unavailable", "The database connection was lost during the request; retry it.")
    response = ApiJSONResponse(body, status_code=503, headers={"Retry-After": "1"})

    async def nothing() -> _Message:
        return {"type": "http.disconnect"}

    await response(scope, nothing, send)
