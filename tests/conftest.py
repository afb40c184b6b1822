"""Shared fixtures: an isolated working directory per test, helpers to read the store, and the
headless browser of the web app's tests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import branchline
import branchline.sdk.lifecycle  # the package root loads the SDK lazily
from branchline.store import Store, open_store
from tests.backends import Backend, SharedServer
from tests.store_factory import pg_available, pg_schema_url

QUIET = {"quiet": True, "x_disable_stats": True, "console": "off"}


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No settings leak in from the machine: env vars, settings file, working directory."""
    for name in list(os.environ):
        if name.startswith(("BRANCHLINE_", "WANDB_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BRANCHLINE_CONFIG_DIR", str(tmp_path / ".config"))
    monkeypatch.chdir(tmp_path)
    registry = branchline.sdk.lifecycle.registry
    errors_before = registry.writer_errors
    yield
    for run in list(registry.runs):
        run.finish()
    assert registry.writer_errors == errors_before, "a writer process reported an error (see stderr)"


@pytest.fixture
def quiet() -> dict[str, Any]:
    return dict(QUIET)


def store_at(root: Path) -> Store:
    return open_store(f"sqlite:///{root / 'branchline' / 'store.db'}")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = store_at(tmp_path)
    yield s
    s.close()


def run_python(
    code: str, cwd: Path, *, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a snippet in a fresh interpreter (for exit codes, crashes and concurrency)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    full_env["BRANCHLINE_CONFIG_DIR"] = str(cwd / ".config")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def rows(store: Store, entity: str, project: str, run_id: str, key: str) -> dict[int, Any]:
    """{step: value} of one key of a run, read back from the store."""
    view = store.require_run(entity, project, run_id)
    steps, values = store.read_series(view.incarnation_id, key)
    out: dict[int, Any] = {int(s): v.item() for s, v in zip(steps, values, strict=True)}
    for step, value in store.read_objects(view.incarnation_id, key):
        out[step] = value
    return dict(sorted(out.items()))


# -- backends: the same suites embedded, on PostgreSQL and against a real server (tests/backends.py) --
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "backends(*modes): the backend modes a test runs in (default embedded, server)")
    config.addinivalue_line("markers", "embedded_only(reason): needs the local store or a subprocess of its own")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    chosen = metafunc.definition.get_closest_marker("backends")
    modes: tuple[str, ...] = tuple(chosen.args) if chosen else ("embedded", "server")
    if metafunc.definition.get_closest_marker("embedded_only"):
        modes = ("embedded",)
    params = [pytest.param(m, marks=pytest.mark.postgres) if m == "postgresql" else m for m in modes]
    metafunc.parametrize("backend", params, indirect=True)


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedServer]:
    """One real `branchline server` per xdist worker, started when a server-mode test first needs it."""
    server = SharedServer.start(tmp_path_factory.mktemp("server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Backend]:
    """Where this test's runs go (parametrised by `pytest_generate_tests`); see tests/backends.py."""
    mode = request.param
    if mode == "embedded":
        chosen = Backend(mode, f"sqlite:///{tmp_path / 'branchline' / 'store.db'}")
        yield chosen
        chosen.close()
    elif mode == "postgresql":
        if not pg_available():
            pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
        with pg_schema_url() as url:
            chosen = Backend(mode, url)
            yield chosen
            chosen.close()
    else:
        server: SharedServer = request.getfixturevalue("shared_server")
        server.wipe()
        server.new_log()
        monkeypatch.setenv("BRANCHLINE_BASE_URL", server.process.base_url)
        monkeypatch.setenv("BRANCHLINE_API_KEY", server.api_key)
        chosen = Backend(mode, server.process.store_url, server.process.base_url, server.api_key)
        yield chosen
        chosen.close()
        assert server.process.proc is not None and server.process.proc.poll() is None, "the server died"
        log = server.new_log()
        assert "Traceback" not in log, f"the server failed a request:\n{log}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for a browser-test module (Debian's, through Playwright); closed after it."""
    from tests.browser import chromium

    with chromium() as launched:
        yield launched
