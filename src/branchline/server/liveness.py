"""`GET /api/v1/server/alive`: the load balancer's health check, answered on the event loop.

`/api/v1/health` is a plain route: it waits for a worker thread like every request that reads the
store. A replica busy with a burst of ingest has all of them occupied, so its `/health` answers
late, the load balancer takes it for dead, and the burst moves onto the other replicas, which then
fail their checks in turn. This route needs no thread, no store and no key: it answers as long as
the process serves HTTP at all, which is what a health check should ask. (Left out of the OpenAPI
schema: it is about the deployment, not about anyone's runs.)
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from branchline.server.errors import ApiJSONResponse

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["server"])


@router.get("/server/alive", include_in_schema=False)
async def alive() -> Response:
    """This process serves HTTP (a health check for load balancers)."""
    return ApiJSONResponse({"ok": True})
