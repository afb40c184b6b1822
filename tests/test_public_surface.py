"""The public surface is small, explicit and cheap to import."""

from __future__ import annotations

import subprocess
import sys

import branchline

EXPECTED = {
    "__version__",
    "init",
    "log",
    "finish",
    "define_metric",
    "save",
    "alert",
    "mark_preempting",
    "log_artifact",
    "use_artifact",
    "run",
    "config",
    "summary",
    "Run",
    "Metric",
    "Api",
    "Artifact",
    "AlertLevel",
    "Settings",
    "Error",
    "UsageError",
    "ConfigError",
    "CommError",
    "AuthenticationError",
    "RunNotFoundError",
    "SchemaError",
}


def test_all_is_exactly_the_public_surface() -> None:
    assert set(branchline.__all__) == EXPECTED
    assert len(branchline.__all__) == len(set(branchline.__all__))
    for name in branchline.__all__:
        getattr(branchline, name)  # every name resolves (Api and Artifact lazily)


def test_errors_form_one_tree() -> None:
    for name in ("UsageError", "ConfigError", "CommError", "AuthenticationError", "RunNotFoundError", "SchemaError"):
        assert issubclass(getattr(branchline, name), branchline.Error)
    assert issubclass(branchline.RunNotFoundError, ValueError)


def test_import_does_not_pull_in_heavy_dependencies() -> None:
    code = (
        "import sys, branchline; "
        "heavy = [m for m in ('sqlalchemy', 'numpy', 'pandas', 'fastapi', 'httpx', 'alembic') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
