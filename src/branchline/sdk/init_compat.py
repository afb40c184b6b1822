"""Module functions wandb scripts call around `init`: `login`, `setup`, `teardown`, `term*`.

Each keeps wandb's signature. `login` stores a server URL and key the way `branchline login` does
(the settings file, readable by the owner only); without a server there is nothing to log in to
and it returns True. (`wandb.api.api_key`-style look-ups are answered by `branchline.api`.)
"""

from __future__ import annotations

import sys
from typing import Any

from branchline.settings import Settings, save_settings_file, warn_no_effect

__all__ = ["link_artifact", "login", "setup", "teardown", "termerror", "termlog", "termsetup", "termwarn"]

_term_silent = False


def termsetup(settings: Any = None, logger: Any = None) -> None:
    """Silence `termlog`/`termwarn` when the settings say `silent` (wandb's signature)."""
    global _term_silent
    _term_silent = bool(getattr(settings, "silent", False) or (isinstance(settings, dict) and settings.get("silent")))


def _term(prefix: str, string: str, newline: bool, repeat: bool) -> None:
    del repeat  # wandb's flag for messages printed once; every call prints here
    print(f"branchline: {prefix}{string}", file=sys.stderr, end="\n" if newline else "", flush=True)


def termlog(string: str = "", newline: bool = True, repeat: bool = True, prefix: bool = True) -> None:
    """Print a line to stderr with the `branchline:` prefix (nothing when silent)."""
    if not _term_silent:
        _term("", string, newline, repeat)


def termwarn(string: str, newline: bool = True, repeat: bool = True, prefix: bool = True) -> None:
    if not _term_silent:
        _term("WARNING ", string, newline, repeat)


def termerror(string: str, newline: bool = True, repeat: bool = True, prefix: bool = True) -> None:
    _term("ERROR ", string, newline, repeat)


def login(
    anonymous: str | None = None,
    key: str | None = None,
    relogin: bool | None = None,
    host: str | None = None,
    force: bool | None = None,
    timeout: int | None = None,
    verify: bool = False,
    referrer: str | None = None,
) -> bool:
    """Store `host` and `key` for later runs (when given); True when a run can start.

    With `verify=True` the key is checked against the server first (an AuthenticationError or
    CommError when it is refused or the server cannot be reached). `relogin` is implied: a key
    passed replaces the stored one. `anonymous`, `timeout` and `referrer` have no effect here.
    """
    if anonymous is not None:
        warn_no_effect("anonymous", "there are no anonymous accounts")
    if key is None and host is None:
        return True  # the embedded store needs no login; a stored server login is used as it is
    current = Settings.resolve({}, None)
    url = (host or current.base_url or "").rstrip("/") or None
    if url is not None and not url.startswith(("http://", "https://")):
        url = "http://" + url
    if verify and url is not None:
        from branchline.sdk.http_sink import HttpSink

        sink = HttpSink(url, key or current.api_key, retry_seconds=5.0)
        try:
            sink.viewer()
        finally:
            sink.close()
    values: dict[str, Any] = {}
    if url is not None:
        values["base_url"] = url
    if key is not None:
        values["api_key"] = key
    save_settings_file(values)
    return True


def setup(settings: Settings | dict[str, Any] | None = None) -> None:
    """Check `settings` early, as wandb's `setup()` starts its service; nothing else to start here."""
    Settings.resolve({}, settings)


def teardown(exit_code: int | None = None) -> None:
    """Finish every active run (wandb's end of `setup()`)."""
    from branchline.sdk.hooks import registry

    for run in list(registry.runs):
        run.finish(exit_code=exit_code)


def link_artifact(run: Any, artifact: Any, target_path: str, aliases: Any = None) -> Any:
    """`run.link_artifact`: wandb links a version into a registry; there is none here.

    The artifact is logged by `run` if it is still a draft (as wandb does), stays in the run's
    project, and the link itself is skipped with a warning naming `target_path`.
    """
    if getattr(artifact, "is_draft", lambda: False)():
        artifact = run.log_artifact(artifact, aliases=aliases)
    warn_no_effect("link_artifact", f"no registries here; {target_path!r} was not linked, the artifact stays logged")
    return artifact
