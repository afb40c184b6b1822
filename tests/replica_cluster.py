"""A scaled-out branchline on one machine: `branchline server` replicas behind HAProxy, on a fresh
PostgreSQL database and a bucket of moto's S3 server, all on free loopback ports.

Used by tests/test_replicas.py (3 replicas, a short load) and bench/bench_replicas.py (the 200-run
load). The HAProxy configuration written here is the one docs/self-hosting.md recommends, with
loopback addresses and short health-check intervals.

    with replica_cluster(tmp_path, replicas=3) as cluster:
        env = cluster.sdk_env()          # BRANCHLINE_BASE_URL (the load balancer), BRANCHLINE_API_KEY
        cluster.kill(cluster.lease_holder())
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from branchline.store import open_store
from tests.backends import ServerProcess, end_process, free_port

__all__ = [
    "PG_ADMIN_URL",
    "S3_CREDENTIALS",
    "Cluster",
    "LoadBalancer",
    "Replica",
    "fresh_database",
    "haproxy_binary",
    "haproxy_config",
    "moto_s3",
    "replica_cluster",
    "why_no_cluster",
]

#: The PostgreSQL server the tests use (trust auth); databases are created and dropped on it.
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
#: moto accepts any credentials; obstore and boto3 still want some.
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
USER = "alice"

_MOTO = textwrap.dedent(
    """
    import sys
    from moto.server import ThreadedMotoServer
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.stop()
    """
)


def haproxy_binary() -> str | None:
    """Debian's haproxy (scripts/install.sh installs it), or None."""
    return shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if os.access(p, os.X_OK)), None)


def why_no_cluster() -> str | None:
    """Why a cluster cannot start here (a skip reason), or None when everything it needs is present."""
    if haproxy_binary() is None:
        return "HAProxy is not installed (scripts/install.sh installs Debian's haproxy when run as root)"
    for module in ("psycopg", "boto3", "moto.server", "obstore"):
        try:
            __import__(module)
        except ImportError:
            return f"the Python package {module.split('.')[0]} is not installed (pip install -e '.[dev]')"
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            pass
    except Exception as exc:
        return f"PostgreSQL is not reachable on 127.0.0.1:5432: {exc}"
    return None


@contextmanager
def fresh_database(prefix: str = "bl_replicas") -> Iterator[str]:
    """A store URL on a new PostgreSQL database, dropped (connections and all) afterwards."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def moto_s3() -> Iterator[str]:
    """moto's S3 server in its own process on 127.0.0.1; yields its endpoint URL."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _MOTO],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield f"http://127.0.0.1:{int(proc.stdout.readline())}"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def haproxy_config(port: int, servers: list[tuple[str, int]], stats_socket: Path, *, check_ms: int = 500) -> str:
    """The load balancer's configuration: round robin over the replicas, active health checks.

    - `option httpchk` takes a replica out after 2 failed checks of `/api/v1/server/alive` (answered
      on the event loop, so a replica busy with ingest is not taken for a dead one);
    - `retries` + `option redispatch` resend a request whose connection failed (nothing was sent,
      so even a POST is safe) to another replica; other failures reach the client, whose retries
      land elsewhere (ingest is idempotent on the writer's sequence numbers);
    - `X-Branchline-Replica` names the replica that answered (for the tests; harmless to keep).
    """
    lines = [
        "global",
        "    maxconn 4096",
        f"    stats socket {stats_socket} mode 600 level admin",
        "defaults",
        "    mode http",
        "    option forwardfor",
        "    timeout connect 2s",
        "    timeout client 300s",
        "    timeout server 300s",
        "    timeout http-request 60s",
        "    timeout check 3s",  # a busy replica's health check may be slow: only a dead one is down
        "    retries 3",
        "    option redispatch 1",
        "frontend branchline",
        f"    bind 127.0.0.1:{port}",
        "    default_backend replicas",
        "backend replicas",
        "    balance roundrobin",
        "    option httpchk GET /api/v1/server/alive",
        "    http-check expect status 200",
        f"    default-server inter {check_ms} fall 2 rise 2",
        "    http-response set-header X-Branchline-Replica %s",
        *(f"    server {name} 127.0.0.1:{server_port} check" for name, server_port in servers),
    ]
    return "\n".join(lines) + "\n"


class LoadBalancer:
    """HAProxy in the foreground (`-db`), configured by `haproxy_config`."""

    def __init__(self, workdir: Path, servers: list[tuple[str, int]]) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.stats_socket = workdir / "haproxy.sock"
        self.config = workdir / "haproxy.cfg"
        self.config.write_text(haproxy_config(self.port, servers, self.stats_socket))
        self.log = workdir / "haproxy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = haproxy_binary()
        assert binary is not None, "haproxy is not installed"
        check = subprocess.run([binary, "-c", "-q", "-f", str(self.config)], capture_output=True, text=True)
        assert check.returncode == 0, f"invalid HAProxy configuration:\n{check.stdout}{check.stderr}"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([binary, "-db", "-f", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.base_url + "/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("HAProxy did not start:\n" + self.log.read_text())

    def stats(self) -> dict[str, dict[str, str]]:
        """HAProxy's `show stat` per replica: `status` (UP/DOWN), `stot` (requests sent), ..."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(self.stats_socket))
            sock.sendall(b"show stat\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        lines = b"".join(chunks).decode().strip().splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:]]
        return {r["svname"]: r for r in rows if r.get("pxname") == "replicas" and r["svname"] != "BACKEND"}

    def stop(self) -> None:
        if self.proc is not None:
            end_process(self.proc)


@dataclass
class Cluster:
    """The running deployment: its store URL, bucket, load balancer, replicas and an API key."""

    store_url: str
    s3_endpoint: str
    bucket: str
    api_key: str
    lb: LoadBalancer
    replicas: dict[str, ServerProcess] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """Where clients go: the load balancer."""
        return self.lb.base_url

    def sdk_env(self) -> dict[str, str]:
        """Environment for a training process whose runs go through the load balancer."""
        return {"BRANCHLINE_BASE_URL": self.base_url, "BRANCHLINE_API_KEY": self.api_key}

    def s3_env(self) -> dict[str, str]:
        return {**S3_CREDENTIALS, "BRANCHLINE_S3_ENDPOINT_URL": self.s3_endpoint}

    def background(self) -> dict[str, dict[str, Any] | None]:
        """Each live replica's background status, asked directly (not through the load balancer)."""
        out: dict[str, dict[str, Any] | None] = {}
        for name, proc in self.replicas.items():
            if proc.proc is None or proc.proc.poll() is not None:
                out[name] = None
                continue
            try:
                response = httpx.get(
                    proc.base_url + "/api/v1/server/background",
                    headers={"Authorization": f"Bearer {self.api_key}"},
                    timeout=5,
                )
                out[name] = response.json() if response.status_code == 200 else None
            except httpx.TransportError:
                out[name] = None
        return out

    def lease_holder(self, timeout: float = 20) -> str:
        """The replica holding the background lease (waits for one to take it)."""
        deadline = time.monotonic() + timeout
        while True:
            holders = [n for n, s in self.background().items() if s is not None and s["lease"] == "held"]
            assert len(holders) <= 1, f"several replicas hold the lease: {holders}"
            if holders:
                return holders[0]
            assert time.monotonic() < deadline, f"no replica took the lease: {self.background()}"
            time.sleep(0.2)

    def kill(self, name: str) -> None:
        """SIGKILL a replica: no shutdown, no lease release; PostgreSQL notices the closed session."""
        self.replicas[name].kill()

    def rss_mib(self) -> dict[str, float]:
        """Resident memory of each live replica process, in MiB (from /proc)."""
        out = {}
        for name, proc in self.replicas.items():
            if proc.proc is None or proc.proc.poll() is not None:
                continue
            with open(f"/proc/{proc.proc.pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        out[name] = int(line.split()[1]) / 1024
        return out


class Replica(ServerProcess):
    """A `branchline server` replica: `ServerProcess`, with more time to start, since three start at
    once beside PostgreSQL, moto and whatever else shares the machine's cores."""

    def start(self, timeout: float = 120) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
        env["BRANCHLINE_CONFIG_DIR"] = str(self.workdir / ".server-config")
        env.update(self.extra_env)
        command = [sys.executable, "-m", "branchline", "server", "--store", self.store_url, "--port", str(self.port)]
        command += ["--crash-timeout", str(self.crash_timeout), *self.extra_args]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(command, cwd=self.workdir, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.base_url + "/api/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("the replica did not start:\n" + self.log.read_text())


def _bucket(endpoint: str, name: str) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=name)


@contextmanager
def replica_cluster(
    workdir: Path, *, replicas: int = 3, crash_timeout: float = 10.0, extra_args: list[str] | None = None
) -> Iterator[Cluster]:
    """Start PostgreSQL database, bucket, `replicas` servers and HAProxy; tear all down afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        store_url = stack.enter_context(fresh_database())
        endpoint = stack.enter_context(moto_s3())
        bucket = "branchline"
        _bucket(endpoint, bucket)
        # The schema and the first user, once, before any replica starts (`branchline db upgrade`
        # and `branchline users create` in the recipe): replicas then only open the store.
        with open_store(store_url) as store:
            store.create_user(USER)
            key = store.create_api_key(USER)[1]
        # The same environment on every replica, signing secret included (docs/self-hosting.md).
        env = {**S3_CREDENTIALS, "BRANCHLINE_S3_ENDPOINT_URL": endpoint, "BRANCHLINE_SERVER_SECRET": uuid.uuid4().hex}
        servers: dict[str, ServerProcess] = {}
        for i in range(1, replicas + 1):
            home = workdir / f"replica{i}"
            home.mkdir(exist_ok=True)
            proc = Replica(
                store_url,
                home,
                crash_timeout=crash_timeout,
                extra_args=["--artifacts", f"s3://{bucket}/blobs", *(extra_args or [])],
                extra_env=env,
            )
            stack.callback(proc.stop)
            servers[f"r{i}"] = proc
        with ThreadPoolExecutor(len(servers)) as starting:  # in parallel: each takes seconds to import
            list(starting.map(lambda replica: replica.start(), servers.values()))
        lb = LoadBalancer(workdir, [(name, proc.port) for name, proc in servers.items()])
        stack.callback(lb.stop)
        lb.start()
        yield Cluster(store_url, endpoint, bucket, key, lb, servers)
