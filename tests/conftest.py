"""Shared fixtures: an isolated working directory per test, and helpers to read the store."""

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
from branchline.store import Store, open_store

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
