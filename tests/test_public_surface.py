"""The public surface is small, explicit and cheap to import."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import branchline

EXPECTED = {
    "__version__",
    "init",
    "log",
    "finish",
    "join",
    "login",
    "setup",
    "teardown",
    "termlog",
    "termwarn",
    "termerror",
    "termsetup",
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
    "Image",
    "Table",
    "Histogram",
    "Audio",
    "Video",
    "Html",
    "plot",
    "watch",
    "unwatch",
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


def test_the_sdk_loads_on_first_use_and_init_binds_the_module_globals(tmp_path: Path) -> None:
    # The package root imports the SDK lazily; `wandb.init/log/finish/run/config/summary` behave as before.
    code = textwrap.dedent(
        f"""
        import sys
        import branchline as wandb
        assert not [m for m in sys.modules if m.startswith("branchline.sdk")], "the SDK was loaded by the import"
        assert wandb.run is None and wandb.config is None and wandb.summary is None
        run = wandb.init(project="p", dir={str(tmp_path)!r}, mode="offline",
                         settings={{"quiet": True, "x_disable_stats": True, "console": "off"}})
        assert isinstance(run, wandb.Run) and wandb.init.__module__ == "branchline.sdk.init"
        assert wandb.run is run and wandb.config is run.config and wandb.summary is run.summary
        wandb.log({{"loss": 1.0}})
        wandb.finish()
        assert wandb.run is None and wandb.config is None and wandb.summary is None
        namespace = {{}}
        exec("from branchline import *", namespace)
        assert set(wandb.__all__) <= set(namespace) and set(wandb.__all__) <= set(dir(wandb))
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
