"""Machine and code metadata recorded once at run start (the `wandb-metadata.json` facts)."""

from __future__ import annotations

import contextlib
import getpass
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import ClassVar
from urllib.parse import urlsplit, urlunsplit

import psutil

from branchline.sdk.system_monitor import nvidia_cuda_version, nvidia_gpu_info

__all__ = ["collect_metadata", "requirements"]

_GIT_TIMEOUT = 1.0


def collect_metadata(program: str | None, root: str) -> dict[str, object]:
    """Describe this machine, interpreter and (when `root` is in a git work tree) the code.

    Never raises: whatever cannot be found out is simply absent.
    """
    meta: dict[str, object] = {}
    # Git runs in child processes, so start it first and collect it last.
    git = _GitQuery(root)

    def put(key: str, compute: Callable[[], object]) -> None:
        try:
            value = compute()
        except Exception:  # a fact we cannot get is left out, never fatal
            return
        if value is not None:
            meta[key] = value

    put("os", platform.platform)
    put(
        "python",
        lambda: f"{platform.python_implementation()} {platform.python_version()}",
    )
    put("startedAt", lambda: datetime.now(UTC).isoformat())
    put("program", lambda: program)
    put("codePath", lambda: _code_path(program, root))
    put("root", lambda: os.path.abspath(root))
    # Like wandb, `args` is what follows the program, not the whole argv.
    put("args", lambda: list(sys.argv[1:]))
    put("executable", lambda: sys.executable)
    put("host", socket.gethostname)
    put("username", getpass.getuser)
    put("cpu_count", lambda: psutil.cpu_count(logical=False))
    put("cpu_count_logical", lambda: psutil.cpu_count(logical=True))
    put("cpu", _cpu_info)
    put("memory", lambda: {"total": int(psutil.virtual_memory().total)})
    put("disk", _disk_info)
    put("branchline_version", _own_version)
    gpus = nvidia_gpu_info()
    if gpus:
        meta["gpu"] = str(gpus[0].get("name", ""))
        meta["gpu_count"] = len(gpus)
        meta["gpu_nvidia"] = gpus
    meta["cudaVersion"] = nvidia_cuda_version() if gpus else None
    repo = git.result()
    if repo is not None:
        meta["git"] = repo
    return meta


def requirements() -> str:
    """Installed distributions as sorted `name==version` lines (a requirements.txt)."""
    pins: set[str] = set()
    for dist in importlib.metadata.distributions():
        # A half-installed distribution can have unreadable or empty metadata.
        with contextlib.suppress(Exception):
            name = dist.metadata["Name"]
            version = dist.version
            if name and version:
                pins.add(f"{name}=={version}")
    lines = sorted(pins, key=str.lower)
    return "\n".join(lines) + "\n" if lines else ""


def _own_version() -> str:
    try:
        return importlib.metadata.version("branchline")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _code_path(program: str | None, root: str) -> str | None:
    if not program:
        return None
    path = os.path.abspath(program)
    base = os.path.abspath(root)
    if os.path.commonpath([path, base]) != base:
        return None
    return os.path.relpath(path, base)


def _cpu_info() -> dict[str, str] | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                # x86 says "model name"; several ARM kernels only offer "Hardware"/"Processor".
                if key.strip() in ("model name", "Hardware", "Processor", "cpu model"):
                    model = value.strip()
                    if model:
                        return {"model": model}
    except OSError:
        pass
    model = platform.processor()
    return {"model": model} if model else None


def _disk_info() -> dict[str, dict[str, int]]:
    usage = psutil.disk_usage("/")
    return {"/": {"total": int(usage.total), "used": int(usage.used)}}


def _redact_remote(url: str) -> str:
    """Drop a password or token embedded in an http(s) remote URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.scheme not in ("http", "https") or parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}@{host}" if parts.username else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class _GitQuery:
    """Asks git about `root` with a few concurrent, short-lived child processes."""

    _COMMANDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "commit": ("rev-parse", "--verify", "-q", "HEAD"),
        "branch": ("symbolic-ref", "--short", "-q", "HEAD"),
        "remote": ("config", "--get", "remote.origin.url"),
        "dirty": ("status", "--porcelain", "--untracked-files=no"),
    }

    def __init__(self, root: str) -> None:
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        env = dict(os.environ)
        # Never take the index lock (the user's own git may be running) or prompt for anything.
        env.update(GIT_OPTIONAL_LOCKS="0", GIT_TERMINAL_PROMPT="0", LC_ALL="C")
        for key, args in self._COMMANDS.items():
            try:
                self._procs[key] = subprocess.Popen(
                    ("git", "-C", root, *args),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    env=env,
                )
            except Exception:
                break  # git is not installed (or root is unusable); the rest would fail alike

    def result(self) -> dict[str, object] | None:
        deadline = time.monotonic() + _GIT_TIMEOUT
        outputs: dict[str, tuple[int, str]] = {}
        for key, proc in self._procs.items():
            try:
                out, _ = proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
            except (subprocess.TimeoutExpired, OSError):
                proc.kill()
                with contextlib.suppress(Exception):
                    proc.communicate(timeout=1.0)
                continue
            outputs[key] = (proc.returncode, out.decode("utf-8", "replace").strip())
        commit = outputs.get("commit")
        # rev-parse --verify -q: 0 = commit found, 1 = repository without commits, else not a repo.
        if commit is None or commit[0] not in (0, 1):
            return None
        info: dict[str, object] = {}
        if commit[0] == 0 and commit[1]:
            info["commit"] = commit[1]
        branch = outputs.get("branch")
        if branch is not None and branch[0] == 0 and branch[1]:
            info["branch"] = branch[1]
        remote = outputs.get("remote")
        if remote is not None and remote[0] == 0 and remote[1]:
            info["remote"] = _redact_remote(remote[1])
        dirty = outputs.get("dirty")
        if dirty is not None and dirty[0] == 0:
            info["dirty"] = bool(dirty[1])
        return info
