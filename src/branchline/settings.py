"""Settings: explicit arguments > `settings=` > BRANCHLINE_* env > WANDB_* env > settings file."""

from __future__ import annotations

import dataclasses
import difflib
import getpass
import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from branchline.compat_names import WANDB_SETTINGS
from branchline.errors import UsageError

__all__ = ["Settings", "load_settings_file", "save_settings_file", "settings_file_path", "warn_no_effect"]

_TRUE = {"1", "true", "yes", "on"}


def settings_file_path() -> Path:
    base = os.environ.get("BRANCHLINE_CONFIG_DIR") or os.path.join(
        os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config"), "branchline"
    )
    return Path(base) / "settings.json"


def load_settings_file() -> dict[str, Any]:
    path = settings_file_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UsageError(f"Could not read the settings file {path}: {exc}. Fix or delete it.") from None
    return data if isinstance(data, dict) else {}


def save_settings_file(values: Mapping[str, Any]) -> Path:
    """Merge `values` into the settings file, readable by the owner only (it may hold an API key)."""
    path = settings_file_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = load_settings_file()
    data.update(values)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.chmod(path, 0o600)
    return path


def _default_entity() -> str:
    try:
        return getpass.getuser() or "user"
    except Exception:
        return "user"


@dataclass
class Settings:
    """Every knob of the SDK. Field names follow wandb's where wandb has one."""

    project: str | None = None
    entity: str | None = None
    root_dir: str | None = None  # `dir=`; the store and run files live in <root_dir>/branchline
    mode: str = "online"  # online | offline | disabled
    run_id: str | None = None
    run_name: str | None = None
    run_notes: str | None = None
    run_tags: tuple[str, ...] | None = None
    run_group: str | None = None
    run_job_type: str | None = None
    resume: str | None = None
    resume_from: str | None = None
    fork_from: str | None = None
    store_url: str | None = None  # overrides the embedded SQLite file
    base_url: str | None = None  # a branchline server
    api_key: str | None = None
    quiet: bool = False
    silent: bool = False
    console: str = "auto"
    save_code: bool | None = None
    sync_tensorboard: bool = False  # `init(sync_tensorboard=True)` / `tensorboard=True`
    reinit: str | bool = "default"
    heartbeat_seconds: float = 30.0
    # Seconds finish() waits for records to be stored; 0 waits forever. None: forever for the
    # embedded store, 60 s for a server (unsent records stay in the journal for `branchline sync`).
    finish_timeout: float | None = None
    x_crash_timeout: float = 300.0
    x_disable_stats: bool = False
    x_stats_sampling_interval: float = 15.0
    x_stats_disk_paths: tuple[str, ...] = ("/",)
    x_writer_poll_seconds: float = 0.1
    # Seconds a process stopped from the UI has to end before it gets SIGTERM, then SIGKILL.
    x_stop_grace: float = 15.0
    max_end_of_run_history_metrics: int = 10
    capture_loggers: dict[str, str | int] | None = None  # logger name -> level, into the console log
    alert_webhook_url: str | None = None
    alert_email_to: str | None = None
    smtp_url: str | None = None
    # Which variable set `base_url` when it came from wandb's WANDB_BASE_URL: init checks that it
    # names a branchline server before using it (sdk/init_target.py).
    x_base_url_env: str | None = None
    # Settings of wandb's with no effect here (kept, warned about once), and `artifact_storage`.
    extra: dict[str, Any] = field(default_factory=dict)

    # -- resolution -----------------------------------------------------------------
    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    def update(self, values: Mapping[str, Any], *, source: str) -> None:
        for name, value in values.items():
            if value is None:
                continue
            if name not in self.names():
                self._set_foreign(name, value, source)
                continue
            setattr(self, name, _coerce(name, value))

    def _set_foreign(self, name: str, value: Any, source: str) -> None:
        """A name that is not ours: wandb's (kept in `extra`, warned about once) or an error."""
        if name in WANDB_SETTINGS:
            warn_no_effect(name)
            self.extra[name] = value
            return
        known = self.names() | WANDB_SETTINGS
        close = difflib.get_close_matches(name, sorted(known), n=3)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UsageError(f"Unknown setting {name!r} in {source}; neither branchline nor wandb has it.{hint}")

    @classmethod
    def resolve(cls, explicit: Mapping[str, Any], given: Settings | Mapping[str, Any] | None) -> Settings:
        """Build settings from the file, env, `settings=` and explicit `init` arguments, in that order."""
        settings = cls()
        settings.update(load_settings_file(), source="the settings file")
        settings.update(_env_with_precedence(), source="the environment")
        if isinstance(given, Settings):
            settings.update(
                {
                    f.name: getattr(given, f.name)
                    for f in fields(given)
                    if getattr(given, f.name) != f.default and f.name != "extra"
                },
                source="settings=",
            )
            settings.extra.update(given.extra)
        elif given is not None:
            if not isinstance(given, Mapping):
                raise UsageError("settings= takes a dict or a branchline.Settings.")
            settings.update(given, source="settings=")
        settings.update(explicit, source="init()")
        if settings.x_base_url_env and settings.base_url != os.environ.get(settings.x_base_url_env):
            settings.x_base_url_env = None  # `settings=` or an argument chose the URL: it is used as given
        if settings.x_base_url_env and settings.store_url:
            # A store named for branchline wins over a server URL set for wandb.
            settings.base_url = settings.x_base_url_env = None
        if settings.mode in ("dryrun",):
            settings.mode = "offline"
        if settings.mode == "run":
            settings.mode = "online"
        if settings.mode not in ("online", "offline", "disabled"):
            raise UsageError(f"mode={settings.mode!r} is not valid; use 'online', 'offline' or 'disabled'.")
        if settings.silent:
            settings.quiet = True
        settings.x_stats_sampling_interval = max(0.1, float(settings.x_stats_sampling_interval))
        return settings

    if not TYPE_CHECKING:  # type checkers keep flagging unknown attributes

        def __getattr__(self, name: str) -> Any:
            """wandb's settings that are not fields here read from `extra` (None when not set)."""
            if name in WANDB_SETTINGS:
                return self.__dict__.get("extra", {}).get(name)
            raise AttributeError(f"'Settings' object has no attribute {name!r}")

    # -- derived -----------------------------------------------------------------------
    @property
    def resolved_entity(self) -> str:
        return self.entity or _default_entity()

    @property
    def branchline_dir(self) -> Path:
        return Path(self.root_dir or os.getcwd()).resolve() / "branchline"

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.branchline_dir / 'store.db'}"

    def copy(self) -> Settings:
        return dataclasses.replace(self, extra=dict(self.extra))


_FIELD_NAMES = frozenset(f.name for f in fields(Settings))
_dataclass_init = Settings.__init__


def _settings_init(self: Settings, *args: Any, **kwargs: Any) -> None:
    """`Settings(...)` also takes wandb's setting names (warned about once) like `settings={...}`."""
    foreign = {name: kwargs.pop(name) for name in list(kwargs) if name not in _FIELD_NAMES}
    _dataclass_init(self, *args, **kwargs)
    for name, value in foreign.items():
        self._set_foreign(name, value, "Settings()")


Settings.__init__ = _settings_init  # type: ignore[method-assign]

_warned: set[str] = set()


def warn_no_effect(name: str, why: str = "") -> None:
    """Warn once per process that a wandb setting or init argument does nothing here."""
    if name in _warned:
        return
    _warned.add(name)
    reason = f" ({why})" if why else ""
    warnings.warn(
        f"branchline: {name!r} is accepted for wandb compatibility and has no effect here{reason}.",
        UserWarning,
        stacklevel=4,
    )


# setting name -> env var names, BRANCHLINE_* first.
_ENV: dict[str, tuple[str, ...]] = {
    "project": ("BRANCHLINE_PROJECT", "WANDB_PROJECT"),
    "entity": ("BRANCHLINE_ENTITY", "WANDB_ENTITY"),
    "root_dir": ("BRANCHLINE_DIR", "WANDB_DIR"),
    "mode": ("BRANCHLINE_MODE", "WANDB_MODE"),
    "run_id": ("BRANCHLINE_RUN_ID", "WANDB_RUN_ID"),
    "run_name": ("BRANCHLINE_NAME", "WANDB_NAME"),
    "run_notes": ("BRANCHLINE_NOTES", "WANDB_NOTES"),
    "run_tags": ("BRANCHLINE_TAGS", "WANDB_TAGS"),
    "run_group": ("BRANCHLINE_RUN_GROUP", "WANDB_RUN_GROUP"),
    "run_job_type": ("BRANCHLINE_JOB_TYPE", "WANDB_JOB_TYPE"),
    "resume": ("BRANCHLINE_RESUME", "WANDB_RESUME"),
    "resume_from": ("BRANCHLINE_RESUME_FROM", "WANDB_RESUME_FROM"),
    "fork_from": ("BRANCHLINE_FORK_FROM", "WANDB_FORK_FROM"),
    "store_url": ("BRANCHLINE_STORE",),
    "base_url": ("BRANCHLINE_BASE_URL", "WANDB_BASE_URL"),
    "api_key": ("BRANCHLINE_API_KEY", "WANDB_API_KEY"),
    "quiet": ("BRANCHLINE_QUIET", "WANDB_QUIET"),
    "silent": ("BRANCHLINE_SILENT", "WANDB_SILENT"),
    "console": ("BRANCHLINE_CONSOLE", "WANDB_CONSOLE"),
    "x_disable_stats": ("BRANCHLINE_DISABLE_STATS", "WANDB_X_DISABLE_STATS"),
    "alert_webhook_url": ("BRANCHLINE_ALERT_WEBHOOK",),
    "alert_email_to": ("BRANCHLINE_ALERT_EMAIL_TO",),
    "smtp_url": ("BRANCHLINE_SMTP_URL",),
    "finish_timeout": ("BRANCHLINE_FINISH_TIMEOUT",),
}


def env_settings() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, variables in _ENV.items():
        for variable in variables:
            value = os.environ.get(variable)
            if value:
                found[name] = value
                break
    return found


#: Variables that choose where runs are stored without a server: any of them beats WANDB_BASE_URL.
_LOCAL_CHOICE = ("BRANCHLINE_STORE", "BRANCHLINE_DIR")


def _env_with_precedence() -> dict[str, Any]:
    """`env_settings()`, where a server URL set only for wandb yields to a branchline choice.

    WANDB_BASE_URL is often left over from W&B: it may be used only when nothing named
    BRANCHLINE_* says otherwise, and init checks that it points at a branchline server.
    """
    found = env_settings()
    if found.get("base_url") and not os.environ.get("BRANCHLINE_BASE_URL"):
        # `branchline login` (the settings file) is a branchline choice too.
        if any(os.environ.get(variable) for variable in _LOCAL_CHOICE) or load_settings_file().get("base_url"):
            del found["base_url"]
        else:
            found["x_base_url_env"] = "WANDB_BASE_URL"
    return found


def _coerce(name: str, value: Any) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if isinstance(value, str):
        if kind == "bool" or kind == "bool | None":
            return value.strip().lower() in _TRUE
        if kind in ("float", "float | None"):
            try:
                return float(value)
            except ValueError:
                raise UsageError(f"Setting {name} must be a number, got {value!r}.") from None
        if kind == "int":
            return int(value)
        if name in ("run_tags", "x_stats_disk_paths"):
            return tuple(part.strip() for part in value.split(",") if part.strip())
    if name in ("run_tags", "x_stats_disk_paths") and not isinstance(value, str):
        return tuple(value)
    return value
