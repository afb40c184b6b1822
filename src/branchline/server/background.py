"""Background work of the server (crash reaping), run once across replicas under a store lease.

Every server process (each replica, each `--workers` process) runs the same loop: each tick it asks
the store's lease (store/leases.py: a PostgreSQL advisory lock, a file lock for SQLite) whether it
may work, and only the holder marks runs silent past the crash timeout as crashed. When the holder
stops or is killed, the lease frees and another replica takes it on its next tick.

Reads reap too (Store.get_run/list_runs), but a server nobody reads must still notice dead runs,
e.g. for the next `resume_from`. Alerts are sent by the SDK, so the server has no other job yet;
a new one joins `_JOBS` and inherits the lease.

`GET /api/v1/server/background` tells an operator which replica holds the lease (it is left out of
the OpenAPI schema: it is about the deployment, not about anyone's runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from branchline.server.auth import AuthPrincipalDep
from branchline.server.errors import ApiError
from branchline.store import Store
from branchline.store.leases import Lease

__all__ = ["LEASE_NAME", "BackgroundStatus", "background_work", "router"]

log = logging.getLogger("branchline.server")

#: The lease every server process of one store competes for.
LEASE_NAME = "background"


@dataclass
class BackgroundStatus:
    """What this process's background loop has done: read by `GET /api/v1/server/background`."""

    replica: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    lease: str = "starting"  # "held", "standby", "error" or "stopped"
    held_since: float | None = None
    reaper_runs: int = 0
    reaped: int = 0
    last_run_at: float | None = None
    last_error: str | None = None


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0][:300] if text else type(exc).__name__


class _Worker:
    """One process's side of the lease: takes or keeps it, then runs the jobs if it holds it."""

    def __init__(self, status: BackgroundStatus) -> None:
        self.status = status
        self.lease: Lease | None = None
        # A tick still running in its thread when the loop is cancelled must finish before `stop`.
        self._lock = threading.Lock()

    def tick(self, store: Store) -> None:
        with self._lock:
            self._tick(store)

    def _tick(self, store: Store) -> None:
        status = self.status
        if self.lease is None:
            self.lease = store.lease(LEASE_NAME)
        try:
            held = self.lease.acquire()
        except Exception as exc:  # the database is away: try again next tick
            if status.lease != "error":
                log.warning("background work: cannot reach the lease: %s", _first_line(exc))
            status.lease, status.held_since, status.last_error = "error", None, _first_line(exc)
            return
        if not held:
            if status.lease == "held":
                log.warning("background work: the lease moved to another server process")
            status.lease, status.held_since = "standby", None
            return
        if status.lease != "held":
            log.info("background work: this process (%s) now runs crash reaping", status.replica)
            status.lease, status.held_since = "held", time.time()
        try:
            status.reaped += store.reap_stale()
            status.last_error = None
        except Exception as exc:  # keep reaping after a transient database error
            status.last_error = _first_line(exc)
            log.warning("marking stale runs crashed failed: %s", status.last_error)
        status.reaper_runs += 1
        status.last_run_at = time.time()

    def stop(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        if self.lease is not None:
            self.lease.release()
            self.lease = None
        self.status.lease, self.status.held_since = "stopped", None


@contextlib.asynccontextmanager
async def background_work(
    get_store: Callable[[], Store | None], interval: float, status: BackgroundStatus
) -> AsyncIterator[BackgroundStatus]:
    """While open, tick every `interval` seconds: the lease holder reaps stale runs, others wait.

    The first tick is at once, so a fresh deployment has a holder right away; on exit the lease is
    released, so another replica takes over on its next tick instead of after a timeout.
    """
    worker = _Worker(status)

    async def loop() -> None:
        while True:
            store = get_store()
            if store is not None:
                try:
                    await run_in_threadpool(worker.tick, store)
                except Exception as exc:  # never let the loop die: it is the only one
                    log.warning("background work failed: %s", _first_line(exc))
            await asyncio.sleep(interval)

    task = asyncio.create_task(loop(), name="branchline-background")
    try:
        yield status
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await run_in_threadpool(worker.stop)


router = APIRouter(prefix="/api/v1", tags=["server"])


@router.get("/server/background", include_in_schema=False)
async def background_status(request: Request, principal: AuthPrincipalDep) -> dict[str, Any]:
    """Whether this server process holds the background lease, and what it has done under it."""
    if principal.anonymous:
        raise ApiError(401, "An API key is needed to see the server's background work.", code="unauthorized")
    status: BackgroundStatus | None = getattr(request.app.state, "background", None)
    if status is None:
        raise ApiError(503, "Background work has not started: the app's lifespan has not run.", code="unavailable")
    return asdict(status)
