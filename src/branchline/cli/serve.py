"""`branchline ui` and `branchline server`: the web app and `/api/v1` under uvicorn."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import socket
import threading
import time
import webbrowser
from pathlib import Path
from typing import TYPE_CHECKING

import click

from branchline.cli.common import settings_for, store_options

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["app_from_env", "is_loopback", "serve", "server", "ui"]

DEFAULT_PORT = 8765
#: How `--workers N` hands the settings to each worker process's app factory.
_SETTINGS_ENV = "BRANCHLINE_SERVER_SETTINGS"
#: The secret signed URLs are made with (server/wandb/signing.py reads it).
_SECRET_ENV = "BRANCHLINE_SERVER_SECRET"


def _shown_url(url: str) -> str:
    """A store URL fit for a log line: no password."""
    from branchline.store.engine import shown_url

    return shown_url(url)


def app_from_env() -> FastAPI:
    """uvicorn's app factory for `--workers N`: each worker builds its app from the CLI's settings."""
    from branchline.server import ServerSettings, create_app

    data = json.loads(os.environ[_SETTINGS_ENV])
    for name in ("ui_dist", "files_dir"):
        data[name] = Path(data[name]) if data.get(name) else None
    data["cors_origins"] = tuple(data.get("cors_origins") or ())
    return create_app(ServerSettings(**data))


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.ClickException(
                f"Cannot listen on {host}:{port}: {exc.strerror or exc}. Is another server using it? Try --port."
            ) from None


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve(
    *,
    store_url: str,
    files_dir: Path | None,
    host: str,
    port: int,
    open_browser: bool,
    read_only: bool = False,
    label: str = "branchline",
    auth_required: bool = False,
    crash_timeout: float | None = None,
    workers: int = 1,
    artifacts_url: str | None = None,
    stop_timeout: float | None = None,
) -> None:
    """Open the store, serve the app until Ctrl+C, and optionally open a browser once it listens."""
    import dataclasses

    import uvicorn

    from branchline.errors import SchemaError
    from branchline.server import ServerSettings, create_app
    from branchline.store import DEFAULT_CRASH_TIMEOUT, open_store

    try:
        open_store(store_url).close()  # fail here, with a clear message, not inside uvicorn
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from None
    _check_port(host, port)
    settings = ServerSettings(
        store_url=store_url,
        files_dir=files_dir,
        read_only=read_only,
        auth_required=auth_required,
        crash_timeout=DEFAULT_CRASH_TIMEOUT if crash_timeout is None else crash_timeout,
        artifacts_url=artifacts_url,
    )
    if stop_timeout is not None:
        settings = dataclasses.replace(settings, stop_timeout=stop_timeout)
    if workers > 1:
        # Several processes need an import string and a factory; settings travel in the environment.
        values = dataclasses.asdict(settings)
        values = {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items()}
        os.environ[_SETTINGS_ENV] = json.dumps(values)
        # Signed file URLs (the wandb protocol) must verify in whichever worker gets the request, so
        # the workers share one secret. Replicas on several machines set it themselves (the same value).
        os.environ.setdefault(_SECRET_ENV, secrets.token_hex(32))
        click.echo(f"{label}: serving {_shown_url(store_url)} at {_url(host, port)} with {workers} workers", err=True)
        uvicorn.run(
            "branchline.cli.serve:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            access_log=False,
        )
        return
    app = create_app(settings)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    url = _url(host, port)

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            click.echo(f"{label}: serving {_shown_url(store_url)} at {url}  (Ctrl+C to stop)", err=True)
            from branchline.server.wandb import client_env

            lines = "\n".join(f"  export {line}" for line in client_env(url, auth_required=auth_required))
            click.echo(f"{label}: to log with the wandb client, set\n{lines}", err=True)
            if open_browser:
                webbrowser.open(url)

    threading.Thread(target=announce, name="branchline-announce", daemon=True).start()
    server.run()


@click.command()
@click.option(
    "--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True, help="Port to listen on."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback only).")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
@click.option("--read-only", is_flag=True, help="Refuse edits, stops, moves and deletes.")
@store_options
def ui(port: int, host: str, no_browser: bool, read_only: bool, root_dir: Path | None, store_url: str | None) -> None:
    """Browse this directory's runs in the web app (embedded store, no login)."""
    if not is_loopback(host):
        raise click.ClickException(
            f"branchline ui serves the local store without a login, so it only listens on loopback "
            f"(127.0.0.1, ::1 or localhost), not {host!r}."
        )
    settings = settings_for(root_dir, store_url)
    serve(
        store_url=settings.resolved_store_url,
        files_dir=settings.branchline_dir / "files" if not store_url else None,
        host=host,
        port=port,
        open_browser=not no_browser,
        read_only=read_only,
        label="branchline ui",
    )


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True, help="Port to listen on."
)
@click.option("--read-only", is_flag=True, help="Refuse edits, stops, moves and deletes.")
@click.option(
    "--auth/--no-auth",
    "auth",
    default=None,
    help="Check API keys. Default: on when the store has users (always on off loopback).",
)
@click.option(
    "--crash-timeout",
    type=click.FloatRange(min=1.0),
    default=None,
    help="Seconds without a heartbeat before a run is marked crashed (default 300).",
)
@click.option(
    "--stop-timeout",
    type=click.FloatRange(min=1.0),
    default=None,
    help="Seconds a stop from the UI or API may take before the run is marked killed (default 120).",
)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Worker processes.")
@click.option(
    "--artifacts",
    "artifacts_url",
    default=None,
    help="Where artifact blobs and run files go: a directory, file:///path or s3://bucket/prefix "
    "(default: blobs/ beside an SQLite store, or $BRANCHLINE_ARTIFACT_STORAGE).",
)
@store_options
def server(
    host: str,
    port: int,
    read_only: bool,
    auth: bool | None,
    crash_timeout: float | None,
    stop_timeout: float | None,
    workers: int,
    artifacts_url: str | None,
    root_dir: Path | None,
    store_url: str | None,
) -> None:
    """Run the branchline server (HTTP API and web app) over a store."""
    from branchline.errors import SchemaError
    from branchline.store import open_store

    settings = settings_for(root_dir, store_url)
    url = settings.resolved_store_url
    try:
        with open_store(url) as store:
            users = store.user_count()
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from None
    if not is_loopback(host):
        if auth is False:
            raise click.ClickException(
                f"Refusing to listen on {host!r} without auth: --no-auth is for loopback addresses only."
            )
        if users == 0:
            raise click.ClickException(
                f"Refusing to listen on {host!r}: a server reachable from other machines requires API keys, "
                f"and the store has no users. Create one first: branchline users create NAME --store {_shown_url(url)}"
            )
        auth = True
    elif auth is None:
        auth = users > 0
    if auth and users == 0:
        raise click.ClickException(
            f"--auth needs at least one user: branchline users create NAME --store {_shown_url(url)}"
        )
    click.echo(
        f"branchline server: auth {'on' if auth else 'off (local single user)'}"
        + (f", {users} user(s)" if auth else ""),
        err=True,
    )
    serve(
        store_url=url,
        files_dir=settings.branchline_dir / "files" if not store_url else None,
        host=host,
        port=port,
        open_browser=False,
        read_only=read_only,
        label="branchline server",
        auth_required=bool(auth),
        crash_timeout=crash_timeout,
        workers=workers,
        artifacts_url=artifacts_url,
        stop_timeout=stop_timeout,
    )
