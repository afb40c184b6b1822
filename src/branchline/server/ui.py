"""Serving the built web app: static assets, and `index.html` for every client-side route."""

from __future__ import annotations

from pathlib import Path

from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Match, Router
from starlette.types import Receive, Scope, Send

from branchline.server.errors import ApiJSONResponse, error_body

__all__ = ["NOT_BUILT_PAGE", "SinglePageApp"]

NOT_BUILT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>branchline</title>
<style>body{font:16px system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1f2328}
code{background:#f0f2f5;padding:.1rem .3rem;border-radius:4px}</style></head>
<body><h1>branchline</h1>
<p>The server is running, but the web app has not been built into this installation.</p>
<p>Build it with <code>bash scripts/build-frontend.sh</code> (needs Node.js 20+), then restart.</p>
<p>The HTTP API works meanwhile: <a href="/api/v1/docs">/api/v1/docs</a>.</p>
</body></html>"""

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class SinglePageApp:
    """An ASGI app mounted last at `/`: files from `dist`, else `index.html` (client-side routes).

    Paths under `/api/` that no API route matched get the API's JSON 404 instead, or a 405 when
    a route of `router` has that path for other methods.
    """

    def __init__(self, dist: Path | None, router: Router | None = None) -> None:
        self.dist = dist.resolve() if dist is not None else None
        self.router = router

    def _index(self) -> Path | None:
        if self.dist is None:
            return None
        index = self.dist / "index.html"
        return index if index.is_file() else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        response = self.respond(scope["method"], scope["path"], self._allowed(scope))
        await response(scope, receive, send)

    def _allowed(self, scope: Scope) -> set[str]:
        """Methods an API route accepts at this path (a method mismatch is a 405, not a 404)."""
        allowed: set[str] = set()
        if self.router is None or not scope["path"].startswith("/api/"):
            return allowed
        for route in self.router.routes:
            match, _ = route.matches(scope)
            if match != Match.PARTIAL:
                continue
            for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                if route.matches({**scope, "method": method})[0] == Match.FULL:
                    allowed.add(method)
        return allowed

    def respond(self, method: str, path: str, allowed: set[str] | None = None) -> Response:
        if allowed:
            return ApiJSONResponse(
                error_body(
                    "method_not_allowed", f"{method} is not allowed on {path}; use {', '.join(sorted(allowed))}."
                ),
                status_code=405,
                headers={"Allow": ", ".join(sorted(allowed))},
            )
        if path == "/api" or path.startswith("/api/"):
            return ApiJSONResponse(error_body("not_found", f"No API route {method} {path}."), status_code=404)
        if method not in ("GET", "HEAD"):
            return ApiJSONResponse(
                error_body("method_not_allowed", f"{method} is not allowed on {path}."),
                status_code=405,
                headers={"Allow": "GET, HEAD"},
            )
        index = self._index()
        if index is None or self.dist is None:
            return HTMLResponse(NOT_BUILT_PAGE, headers=_SECURITY_HEADERS)
        relative = path.lstrip("/")
        if relative:
            candidate = (self.dist / relative).resolve()
            if self.dist in candidate.parents and candidate.is_file():
                cache = "public, max-age=31536000, immutable" if relative.startswith("assets/") else "no-cache"
                return FileResponse(candidate, headers={**_SECURITY_HEADERS, "Cache-Control": cache})
            if relative.startswith("assets/"):
                return Response("Not found", status_code=404, media_type="text/plain")
        return FileResponse(index, media_type="text/html", headers={**_SECURITY_HEADERS, "Cache-Control": "no-cache"})
