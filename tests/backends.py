"""Where the tests' runs go: the embedded store, PostgreSQL, or a real `branchline server` process.

The SDK, fork/rewind and `Api` suites take the `backend` fixture (see conftest.py) and run once per
backend with the very same assertions, reading back through `branchline.Api` (which works in
every mode):

- `embedded`: the SDK writes `./branchline/store.db`; `Api` opens that file.
- `postgresql` (Api suites only): a fresh schema on the test PostgreSQL server.
- `server`: one `branchline server` process per xdist worker on a loopback port, over a SQLite
  store in a temporary directory, with auth on (user `e`, a member of teams `team` and `other`).
  The SDK is pointed at it with BRANCHLINE_BASE_URL / BRANCHLINE_API_KEY, so `init` creates runs
  over HTTP and the writer sends batches to it; `Api` reads through the server. Each test starts
  on an empty store (every run, project and history row is deleted; users and keys stay).
"""

from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import delete

from branchline.api import Api
from branchline.api import Run as ApiRun
from branchline.store.schema import metadata
from branchline.store.store import Store, open_store

#: The user the server-mode tests log in as, and the teams it belongs to.
SERVER_USER = "e"
SERVER_TEAMS = ("team", "other", "your_entity_name")  # the last: examples/seeds
_KEPT_TABLES = frozenset({"users", "api_keys", "teams", "team_members"})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """`branchline server` in a subprocess that tests can kill, freeze and restart."""

    def __init__(
        self,
        store_url: str,
        workdir: Path,
        *,
        crash_timeout: float = 120,
        extra_args: list[str] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.store_url = store_url
        self.extra_args = list(extra_args or [])
        self.extra_env = dict(extra_env or {})
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.crash_timeout = crash_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "server.log"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
        env["BRANCHLINE_CONFIG_DIR"] = str(self.workdir / ".server-config")
        env.update(self.extra_env)
        command = [sys.executable, "-m", "branchline", "server", "--store", self.store_url, "--port", str(self.port)]
        command += ["--crash-timeout", str(self.crash_timeout), *self.extra_args]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(command, cwd=self.workdir, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                # Answered on the event loop: a restarted server that clients flood with resent
                # batches has every worker thread busy, and /health would wait for one.
                if httpx.get(self.base_url + "/api/v1/server/alive", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("the server did not start:\n" + self.log.read_text())

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            end_process(self.proc)


def end_process(proc: subprocess.Popen[Any]) -> None:
    """Terminate a child, then kill it if it has not ended within 5 s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@dataclass
class SharedServer:
    """The per-worker server of the `server` backend, its store (opened here too) and a key."""

    process: ServerProcess
    store: Store
    api_key: str
    log_offset: int = 0

    @classmethod
    def start(cls, workdir: Path) -> SharedServer:
        workdir.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{workdir / 'store.db'}"
        store = open_store(url)
        store.create_user(SERVER_USER)
        for team in SERVER_TEAMS:
            store.create_team(team)
            store.add_team_member(team, SERVER_USER)
        key = store.create_api_key(SERVER_USER)[1]
        process = ServerProcess(url, workdir)
        process.start()
        return cls(process, store, key)

    def wipe(self) -> None:
        """Delete every run, project, artifact and history row; users, teams and keys stay."""
        with self.store.engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                if table.name not in _KEPT_TABLES:
                    conn.execute(delete(table))

    def new_log(self) -> str:
        """What the server printed since the last call (a 500 shows up here as a traceback)."""
        with open(self.process.log, "rb") as log:
            log.seek(self.log_offset)
            text = log.read()
        self.log_offset += len(text)
        return text.decode(errors="replace")

    def stop(self) -> None:
        self.process.stop()
        self.store.close()


@dataclass
class Backend:
    """One backend mode of a test: where runs go and how to read them back."""

    mode: str  # "embedded", "postgresql" or "server"
    store_url: str  # the store runs land in (the server's own store in server mode)
    base_url: str | None = None
    api_key: str | None = None
    _reader: Api | None = None

    @property
    def remote(self) -> bool:
        return self.base_url is not None

    @property
    def entity(self) -> str:
        """The entity runs go to without `entity=`: the key owner's on a server, else the OS user."""
        return SERVER_USER if self.remote else getpass.getuser()

    def env(self) -> dict[str, str]:
        """Environment variables pointing a subprocess's SDK at this backend."""
        if self.base_url is None or self.api_key is None:
            return {}
        return {"BRANCHLINE_BASE_URL": self.base_url, "BRANCHLINE_API_KEY": self.api_key}

    def api(self, **overrides: Any) -> Api:
        """A fresh `branchline.Api` reading this backend (through HTTP in server mode)."""
        if self.base_url is not None:
            return Api(overrides={"base_url": self.base_url, **overrides}, api_key=self.api_key)
        return Api(overrides={"store_url": self.store_url, **overrides})

    def open_store(self) -> Store:
        """The store itself, for fixtures that build runs directly and for storage-level checks."""
        return open_store(self.store_url)

    @property
    def reader(self) -> Api:
        """The test's own `Api`, opened on first use and closed when the test ends."""
        if self._reader is None:
            self._reader = self.api()
        return self._reader

    def run(self, entity: str, project: str, run_id: str) -> ApiRun:
        """A run as `branchline.Api` reads it back."""
        return self.reader.run(f"{entity}/{project}/{run_id}")

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def history(run: ApiRun, key: str) -> dict[int, Any]:
    """{step: value} of one key of a run, through the public API (scan_history follows lineage)."""
    return {int(row["_step"]): row[key] for row in run.scan_history(keys=["_step", key])}
