"""The ASGI app factory: `create_app(settings)` builds a FastAPI app with no module-level state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from branchline._version import __version__
from branchline.server import (
    auth,
    background,
    blobs_api,
    ingest,
    liveness,
    routes_data,
    routes_media,
    routes_projects,
    routes_runs,
    routes_workspaces,
    store_api,
)
from branchline.server import wandb as wandb_protocol
from branchline.server.db_retry import RetryDroppedConnections
from branchline.server.errors import ApiJSONResponse, install_error_handlers
from branchline.server.guards import BEGIN_BODY_LIMIT, BodyLimit, guard_params
from branchline.server.settings import ServerSettings
from branchline.server.ui import SinglePageApp
from branchline.server.workspace_models import WORKSPACE_BODY_LIMIT
from branchline.store import open_store

__all__ = ["create_app"]

DESCRIPTION = """The branchline HTTP API. Every error answers `{"error": {"code", "message", "field"?}}`.

Runs are addressed as `/runs/{entity}/{project}/{run_id}`; any incarnation of a run (an archived one
after a rewind) as `/runs/{entity}/{project}/{run_id}/incarnations/{incarnation_id}`."""


def create_app(settings: ServerSettings) -> FastAPI:
    """A new app serving `settings.store_url` at `/api/v1` and the web app at `/`.

    The store is opened when the app's lifespan starts and closed when it ends; nothing is shared
    between apps, so tests can build as many as they like.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_store(settings.store_url, crash_timeout=settings.crash_timeout)
        store.stop_timeout = settings.stop_timeout
        app.state.store = store
        app.state.chart_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="branchline-charts")
        try:
            # Runs silent past the crash timeout become `crashed`, and runs whose stop is overdue
            # `killed`, even if nobody reads them; with several replicas, only the one holding the
            # store's lease does it (server/background.py).
            interval = max(1.0, min(60.0, min(settings.crash_timeout, settings.stop_timeout) / 4))
            async with background.background_work(lambda: app.state.store, interval, app.state.background):
                yield
        finally:
            app.state.chart_pool.shutdown(wait=True, cancel_futures=True)
            app.state.chart_pool = None
            app.state.store = None
            store.close()

    app = FastAPI(
        title="branchline",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
        default_response_class=ApiJSONResponse,
        dependencies=[Depends(guard_params)],
    )
    app.state.settings = settings
    app.state.store = None
    app.state.chart_pool = None
    app.state.background = background.BackgroundStatus()
    install_error_handlers(app)
    app.add_middleware(
        BodyLimit, limits={"/api/v1/runs/begin": BEGIN_BODY_LIMIT}, suffix_limits={"/workspace": WORKSPACE_BODY_LIMIT}
    )
    app.add_middleware(RetryDroppedConnections)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Content-Type", "Authorization"],
        )
    app.include_router(auth.router)
    app.include_router(ingest.router)
    app.include_router(store_api.router)
    app.include_router(blobs_api.router)
    app.include_router(background.router)
    app.include_router(liveness.router)
    app.include_router(routes_projects.router)
    app.include_router(routes_runs.router)
    app.include_router(routes_workspaces.router)
    routes_data.install_run_resources(app)
    app.include_router(routes_media.router)
    app.include_router(wandb_protocol.router)  # the wandb client's /graphql, file_stream and file URLs
    app.mount("/", SinglePageApp(settings.ui_dist, app.router), name="web-app")
    return app
