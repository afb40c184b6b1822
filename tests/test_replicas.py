"""Scale-out: 3 stateless `branchline server` replicas behind HAProxy, on one PostgreSQL database
and one S3 bucket (moto), all started here on loopback (tests/replica_cluster.py).

20 remote runs × 500 steps go through the load balancer while the replica holding the background
lease is SIGKILLed: every step is stored exactly once, the login cookie works on any replica, an
artifact uploads and downloads through the load balancer, and crash reaping runs on exactly one
replica at a time, moving to another when its holder dies. The leases themselves are checked
first, directly against both store engines.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from branchline.runspec import RunSpec
from branchline.store import open_store
from tests.replica_cluster import USER, Cluster, fresh_database, haproxy_binary, replica_cluster, why_no_cluster

RUNS = 20
STEPS = 500
PROJECT = "replicas"

_TRAIN = textwrap.dedent(
    """
    import sys, time
    import branchline

    run_id, steps = sys.argv[1], int(sys.argv[2])
    run = branchline.init(project="replicas", id=run_id, settings={"quiet": True, "x_disable_stats": True,
                                                                  "console": "off"})
    for step in range(steps):
        run.log({"x": float(step), "y": step * 0.5, "z": -float(step)})
        if step % 10 == 9:
            time.sleep(0.05)  # spread the load over a few seconds, so the kill lands mid-load
    run.finish()
    """
)


# -- leases, on each engine ------------------------------------------------------------------------
def test_sqlite_lease_is_held_by_one_store_at_a_time(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as a, open_store(url) as b:
        first, second = a.lease("background"), b.lease("background")
        assert first.acquire() and first.acquire()  # keeping it is idempotent
        assert not second.acquire()
        first.release()
        assert second.acquire() and not first.acquire()
        second.release()


@pytest.mark.postgres
def test_postgres_lease_moves_when_its_holder_goes() -> None:
    reason = why_no_cluster()
    if reason is not None and "PostgreSQL" in reason:
        pytest.skip(reason)
    import psycopg

    with fresh_database("bl_lease") as url, open_store(url) as a, open_store(url) as b:
        first, second = a.lease("background"), b.lease("background")
        assert first.acquire() and first.acquire()
        assert not second.acquire()
        assert a.lease("other-job").acquire()  # another job's lease is another lock
        # The holder's session ends abruptly (as when its replica is SIGKILLed): the lock goes with it.
        with psycopg.connect(url.replace(url.rsplit("/", 1)[1], "postgres"), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'branchline lease background' AND datname = %s",
                (url.rsplit("/", 1)[1],),
            )
        assert second.acquire()
        assert not first.acquire()  # it notices it lost the lease instead of believing it still holds it
        second.release()
        first.release()


def test_the_documented_haproxy_configuration_is_valid(tmp_path: Path) -> None:
    """docs/self-hosting.md's HAProxy configuration passes `haproxy -c` (the test's own is checked
    each time a cluster starts)."""
    binary = haproxy_binary()
    if binary is None:
        pytest.skip("HAProxy is not installed (scripts/install.sh installs Debian's haproxy when run as root)")
    doc = (Path(__file__).parents[1] / "docs" / "self-hosting.md").read_text()
    config = doc.split("```haproxy\n", 1)[1].split("```", 1)[0]
    assert "option httpchk GET /api/v1/server/alive" in config and "option redispatch" in config
    (tmp_path / "haproxy.cfg").write_text(config)
    check = subprocess.run([binary, "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.postgres
def test_concurrent_overlapping_batches_of_one_session_store_every_step_once() -> None:
    """A client that times out and retries while its first request is still being applied elsewhere
    sends an overlapping batch of the same session: both replicas apply at once."""
    reason = why_no_cluster()
    if reason is not None and "PostgreSQL" in reason:
        pytest.skip(reason)
    from branchline.vocab import RecordKind

    with fresh_database("bl_overlap") as url, open_store(url) as first, open_store(url) as second:
        for trial in range(8):
            spec = RunSpec(
                entity="e",
                project="p",
                run_id=f"r{trial}",
                incarnation_id=f"overlapinc{trial:06d}",
                session_id=f"overlapses{trial:06d}",
                host="elsewhere",
                started_at=time.time(),
            )
            first.begin_run(spec)
            records = [[i + 1, int(RecordKind.HISTORY), i, time.time(), 1.0, {"x": float(i)}] for i in range(3000)]
            barrier = threading.Barrier(2)

            def apply(
                store: Any, count: int, session: str = spec.session_id, rows: Any = records, start: Any = barrier
            ) -> None:
                start.wait()
                store.apply(session, rows[:count])

            threads = [threading.Thread(target=apply, args=args) for args in ((first, 2000), (second, 3000))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            first.apply(spec.session_id, records)  # the client sends whatever is still unacknowledged
            view = first.require_run("e", "p", spec.run_id)
            steps, _ = first.read_series(view.incarnation_id, "x")
            assert np.array_equal(steps, np.arange(3000)), f"trial {trial}: {3000 - len(np.unique(steps))} steps lost"


# -- the deployment ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One deployment for this module (starting one takes a few seconds); the load test kills a
    replica, so it runs last."""
    reason = why_no_cluster()
    if reason is not None:
        pytest.skip(reason)
    with replica_cluster(tmp_path_factory.mktemp("cluster"), replicas=3, crash_timeout=8.0) as running:
        yield running


def _start_run(cluster: Cluster, workdir: Path, run_id: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    env.update(cluster.sdk_env(), BRANCHLINE_CONFIG_DIR=str(workdir / ".config"))
    return subprocess.Popen(
        [sys.executable, "-c", _TRAIN, run_id, str(STEPS)],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / f"{run_id}.log", "wb"),
    )


def _watch_lease(cluster: Cluster, stop: threading.Event, seen: list[dict[str, Any]]) -> None:
    """Sample every replica's background status until `stop`: the test asserts on the samples."""
    while not stop.is_set():
        seen.append({name: (s and dict(s)) for name, s in cluster.background().items()})
        stop.wait(0.3)


def _stored_points(cluster: Cluster) -> int:
    with open_store(cluster.store_url) as store:
        return sum(view.last_step + 1 for view in store.list_runs(USER, PROJECT) if view.last_step >= 0)


def _stale_run(cluster: Cluster) -> str:
    """A run whose writer (on another host) went silent: only the reaper marks it crashed."""
    spec = RunSpec(
        entity=USER,
        project="reaped",
        run_id="silent",
        incarnation_id="silentinc0000001",
        session_id="silentses0000001",
        host="a-host-that-is-gone",
        started_at=time.time(),
    )
    with open_store(cluster.store_url) as store:
        store.begin_run(spec)
    return str(spec.incarnation_id)


def test_artifacts_and_files_through_the_load_balancer(cluster: Cluster, tmp_path: Path) -> None:
    """Upload through the load balancer lands in the bucket; any replica serves it back."""
    import boto3

    work = tmp_path / "work"
    work.mkdir()
    content = os.urandom(300_000)
    (work / "model.bin").write_bytes(content)
    code = textwrap.dedent(
        """
        import branchline
        run = branchline.init(project="arts", id="art-run", settings={"quiet": True, "x_disable_stats": True,
                                                                     "console": "off"})
        art = branchline.Artifact("model", type="model")
        art.add_file("model.bin")
        run.log_artifact(art)
        run.finish()
        api = branchline.Api()
        for i in range(3):  # three downloads, spread over the replicas by the load balancer
            path = api.artifact("alice/arts/model:v0").download(f"out{i}")
            assert open(path + "/model.bin", "rb").read() == open("model.bin", "rb").read()
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    env.update(cluster.sdk_env(), BRANCHLINE_CONFIG_DIR=str(work / ".config"))
    done = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    digest = hashlib.sha256(content).hexdigest()
    client = boto3.client("s3", endpoint_url=cluster.s3_endpoint, region_name="us-east-1", **_boto_keys())
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=cluster.bucket).get("Contents", [])]
    assert f"blobs/{digest[:2]}/{digest[2:]}" in keys
    for proc in cluster.replicas.values():  # nothing on any replica's disk: they are stateless
        assert not (proc.workdir / "blobs").exists()
    for proc in cluster.replicas.values():
        got = httpx.get(
            f"{proc.base_url}/api/v1/artifacts/{USER}/arts/blobs/{digest}",
            headers={"Authorization": f"Bearer {cluster.api_key}"},
            timeout=10,
        )
        assert got.status_code == 200 and got.content == content


def test_replicas_behind_a_load_balancer(cluster: Cluster, tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    holder = cluster.lease_holder()
    others = [n for n in cluster.replicas if n != holder]

    # The login cookie holds the API key, so any replica accepts it.
    with httpx.Client(base_url=cluster.base_url, timeout=10) as browser:
        login = browser.post(
            "/api/v1/session", json={"api_key": cluster.api_key}, headers={"X-Branchline-Client": "web"}
        )
        assert login.status_code == 200 and "branchline_session" in browser.cookies
        answered = set()
        for _ in range(9):
            viewer = browser.get("/api/v1/viewer")
            assert viewer.status_code == 200 and viewer.json()["username"] == USER
            answered.add(viewer.headers["x-branchline-replica"])
        assert answered == set(cluster.replicas), "the load balancer should spread requests over every replica"
        # Behind a TLS-terminating load balancer the cookie is Secure: replicas trust its X-Forwarded-Proto.
        tls = browser.post(
            "/api/v1/session",
            json={"api_key": cluster.api_key},
            headers={"X-Branchline-Client": "web", "X-Forwarded-Proto": "https"},
        )
        assert tls.status_code == 200 and "secure" in tls.headers["set-cookie"].lower()

    # The load: 20 training processes logging through the load balancer.
    samples: list[dict[str, Any]] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_lease, args=(cluster, stop, samples), daemon=True)
    watcher.start()
    run_ids = [f"run{i:02d}" for i in range(RUNS)]
    procs = [_start_run(cluster, runs_dir, run_id) for run_id in run_ids]
    try:
        deadline = time.monotonic() + 90
        while _stored_points(cluster) < RUNS * STEPS // 5:
            assert time.monotonic() < deadline, "the runs stored too little in 90 s"
            assert all(p.poll() in (None, 0) for p in procs), "a training process failed"
            time.sleep(0.2)
        cluster.kill(holder)  # mid-load, and the replica doing background work
        at_kill = _stored_points(cluster)
        stale = _stale_run(cluster)
        for proc, run_id in zip(procs, run_ids, strict=True):
            assert proc.wait(timeout=120) == 0, (runs_dir / f"{run_id}.log").read_text()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert at_kill < RUNS * STEPS, "the load was over before the replica was killed"

    # Another replica takes the lease over and reaps the silent run.
    new_holder = cluster.lease_holder()
    assert new_holder in others
    deadline = time.monotonic() + 30
    with open_store(cluster.store_url) as store:
        # get_incarnation does not reap (reads of runs do), so only the background loop can do this.
        while (view := store.get_incarnation(stale)) is not None and view.state == "running":
            assert time.monotonic() < deadline, f"nobody reaped the silent run: {cluster.background()}"
            time.sleep(0.5)
        assert view is not None and view.state == "crashed"
    stop.set()
    watcher.join()
    # A sample asks the replicas one after another, so one sample can show the killed holder's last
    # word beside its successor's first: compare the spans each replica worked under the lease.
    spans: dict[tuple[str, float], float] = {}
    for sample in samples:
        for name, seen in sample.items():
            if seen is not None and seen["lease"] == "held" and seen["last_run_at"] is not None:
                key = (name, seen["held_since"])
                spans[key] = max(spans.get(key, 0.0), seen["last_run_at"])
    ordered = sorted((since, until, name) for (name, since), until in spans.items())
    for (_, until, name), (since, _, successor) in itertools.pairwise(ordered):
        assert until < since, f"{name} and {successor} worked under the lease at once: {ordered}"
    final = cluster.background()
    assert final[holder] is None
    taken_over = final[new_holder]
    assert taken_over is not None and taken_over["reaper_runs"] > 0 and taken_over["reaped"] >= 1
    for name in others:
        standby = final[name]
        if name != new_holder:
            assert standby is not None and standby["lease"] == "standby" and standby["reaper_runs"] == 0

    # Every step stored exactly once, whichever replicas the batches and their retries reached.
    with open_store(cluster.store_url) as store:
        for run_id in run_ids:
            view = store.require_run(USER, PROJECT, run_id)
            assert view.state == "finished"
            for key, scale in (("x", 1.0), ("y", 0.5), ("z", -1.0)):
                steps, values = store.read_series(view.incarnation_id, key)
                assert np.array_equal(steps, np.arange(STEPS)), f"{run_id}/{key}: lost or duplicated steps"
                assert np.array_equal(values, np.arange(STEPS) * scale)
    stats = cluster.lb.stats()
    assert stats[holder]["status"].startswith("DOWN")
    assert all(int(stats[name]["stot"]) > 0 for name in others)


def _boto_keys() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
