"""The branchline server: `/api/v1` and the web app, built by the `create_app` factory."""

from branchline.server.app import create_app
from branchline.server.settings import DEFAULT_UI_DIST, ServerSettings

__all__ = ["DEFAULT_UI_DIST", "ServerSettings", "create_app"]
