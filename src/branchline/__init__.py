"""branchline: an open-source, self-hosted experiment tracker with a wandb-compatible run API.

import branchline as wandb

run = wandb.init(project="demo", config={"lr": 1e-3})
for step in range(100):
    wandb.log({"loss": 1 / (step + 1)})
wandb.finish()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from branchline._version import __version__
from branchline.errors import (
    AuthenticationError,
    CommError,
    ConfigError,
    Error,
    RunNotFoundError,
    SchemaError,
    UsageError,
)
from branchline.settings import Settings

if TYPE_CHECKING:
    # Resolved lazily by `__getattr__` below; imported here only for type checkers.
    from branchline.api import Api
    from branchline.artifacts import Artifact
    from branchline.sdk.alerts import AlertLevel
    from branchline.sdk.config import Config
    from branchline.sdk.init import init
    from branchline.sdk.init_compat import login, setup, teardown, termerror, termlog, termsetup, termwarn
    from branchline.sdk.media import Audio, Histogram, Html, Image, Table, Video, plot
    from branchline.sdk.run import Metric, Run
    from branchline.sdk.summary import Summary
    from branchline.sdk.watch import unwatch, watch

__all__ = [
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
]

#: The current run (set by `init`, reset by `finish`).
run: Run | None = None
config: Config | None = None
summary: Summary | None = None


def _current(what: str) -> Run:
    if run is None:
        raise Error(f"You must call branchline.init() before branchline.{what}().")
    return run


def log(data: dict[str, Any], step: int | None = None, commit: bool | None = None) -> None:
    """Log to the current run; see `Run.log`."""
    _current("log").log(data, step=step, commit=commit)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """Finish the current run, if any."""
    if run is not None:
        run.finish(exit_code=exit_code)


#: wandb's older name for `finish`.
join = finish


def define_metric(name: str, **kwargs: Any) -> Metric:
    return _current("define_metric").define_metric(name, **kwargs)


def save(glob_str: str, base_path: str | None = None, policy: str = "live") -> list[str]:
    return _current("save").save(glob_str, base_path=base_path, policy=policy)


def alert(title: str, text: str, level: str = "INFO", wait_duration: float = 60) -> None:
    _current("alert").alert(title, text, level=level, wait_duration=wait_duration)


def log_artifact(artifact_or_path: Any, name: str | None = None, type: str | None = None, aliases: Any = None) -> Any:
    """Log an artifact from the current run; see `Run.log_artifact`."""
    return _current("log_artifact").log_artifact(artifact_or_path, name=name, type=type, aliases=aliases)


def use_artifact(artifact_or_name: Any, type: str | None = None, aliases: Any = None) -> Any:
    """Record that the current run uses an artifact, and return it; see `Run.use_artifact`."""
    return _current("use_artifact").use_artifact(artifact_or_name, type=type, aliases=aliases)


def mark_preempting() -> None:
    _current("mark_preempting").mark_preempting()


#: Names served lazily, with the module that defines each. Importing the package stays cheap, and
#: lower layers (store, server) that import `branchline.<layer>` never load the SDK.
_LAZY = {
    "init": "branchline.sdk.init",
    "Run": "branchline.sdk.run",
    "Metric": "branchline.sdk.run",
    "Api": "branchline.api",
    "Artifact": "branchline.artifacts",
    "AlertLevel": "branchline.sdk.alerts",
    "login": "branchline.sdk.init_compat",
    "setup": "branchline.sdk.init_compat",
    "teardown": "branchline.sdk.init_compat",
    "termlog": "branchline.sdk.init_compat",
    "termwarn": "branchline.sdk.init_compat",
    "termerror": "branchline.sdk.init_compat",
    "termsetup": "branchline.sdk.init_compat",
    "Image": "branchline.sdk.media",
    "Table": "branchline.sdk.media",
    "Histogram": "branchline.sdk.media",
    "Audio": "branchline.sdk.media",
    "Video": "branchline.sdk.media",
    "Html": "branchline.sdk.media",
    "plot": "branchline.sdk.media",
    "watch": "branchline.sdk.watch",
    "unwatch": "branchline.sdk.watch",
}


#: Submodules served as attributes: `wandb.tensorboard.patch()`, `wandb.api.api_key`.
_LAZY_MODULES = {"tensorboard": "branchline.sdk.tensorboard", "api": "branchline.api"}


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        submodule = importlib.import_module(_LAZY_MODULES[name])
        globals()[name] = submodule
        return submodule
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'branchline' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_LAZY_MODULES))
