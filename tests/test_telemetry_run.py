"""Run telemetry end to end: real runs, a real store, real subprocesses, HTTP and SMTP servers.

System metrics, console capture, metadata, `run.save` policies, alerts, and the journal shared
by the training thread and the telemetry threads.
"""

from __future__ import annotations

import email
import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

import branchline
from branchline.sdk import files as files_module
from branchline.sdk.alerts import AlertLevel
from branchline.sdk.files import run_file_path, run_files
from branchline.sdk.journal_read import read_journal
from branchline.sdk.system_monitor import SystemMonitor, nvidia_gpu_sample
from branchline.store import open_store
from branchline.vocab import RecordKind

_QUIET: dict[str, Any] = {"quiet": True, "console": "off", "x_disable_stats": True}


def _wait_for(condition: Callable[[], bool], limit: float = 10.0) -> bool:
    """Poll until `condition` holds; a liveness guard, not a timing assertion."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _store(root: Path) -> Any:
    return open_store(f"sqlite:///{root}/branchline/store.db")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------
# System metrics (and wrap-mode console capture) from a busy in-process run


@pytest.fixture(scope="module")
def busy_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("busy")
    run = branchline.init(
        project="p",
        dir=str(root),
        settings={"quiet": True, "x_stats_sampling_interval": 0.2, "console": "wrap"},
    )
    hold_mb = 200
    try:
        print("wrapped print line")
        print("wrapped stderr line", file=sys.stderr)
        monitor = run._ctx.part(SystemMonitor)
        assert monitor is not None
        sampler_thread = monitor._thread
        assert sampler_thread is not None
        held = np.ones(hold_mb * 1024 * 1024 // 8)  # written, so resident
        started = time.perf_counter()
        step = 0
        while time.perf_counter() - started < 1.6:
            total = 0
            for i in range(20_000):
                total += i * i
            run.log({"busy": float(total % 97)})
            step += 1
        wall = time.perf_counter() - started
        sampler_cpu = next(
            (t.user_time + t.system_time for t in psutil.Process().threads() if t.id == sampler_thread.native_id),
            None,
        )
        del held
    finally:
        run.finish()
    store = _store(root)
    view = store.get_run(run.entity, "p", run.id)
    assert view is not None
    series = {
        key: store.read_series(view.incarnation_id, key, stream=1)[1]
        for key in store.history_keys(view.incarnation_id, stream=1)
    }
    yield {
        "run": run,
        "view": view,
        "series": series,
        "lines": store.console_lines(view.incarnation_id),
        "hold_mb": hold_mb,
        "wall": wall,
        "sampler_cpu": sampler_cpu,
        "steps": step,
    }
    store.close()


def test_system_metrics_present_and_plausible(busy_run: dict[str, Any]) -> None:
    series = busy_run["series"]
    for key in (
        "cpu",
        "proc.cpu.threads",
        "memory_percent",
        "proc.memory.rssMB",
        "proc.memory.availableMB",
        "proc.memory.percent",
        "network.sent",
        "network.recv",
        "disk./.usagePercent",
        "disk./.usageGB",
        "_timestamp",
        "_runtime",
    ):
        assert key in series, f"{key} missing from stream 1: {sorted(series)}"
    assert not any(k.startswith("system.") for k in series), "keys are stored without the system. prefix"
    samples = len(series["_timestamp"])
    assert samples >= 3, samples  # 1.6 s of work at 0.2 s
    cpus = psutil.cpu_count() or 1
    cpu = np.asarray(series["cpu"], dtype=float)
    # One busy thread is 100/cpus % of the machine; the peak sample must show most of it.
    assert cpu.max() >= 0.5 * 100 / cpus, cpu
    assert (cpu >= 0).all() and (cpu <= 100.5).all(), cpu
    rss = np.asarray(series["proc.memory.rssMB"], dtype=float)
    total_mb = psutil.virtual_memory().total / 2**20
    assert rss.max() >= busy_run["hold_mb"], rss  # the 200 MB array was resident
    assert rss.max() < total_mb
    memory = np.asarray(series["memory_percent"], dtype=float)
    assert ((memory > 0) & (memory <= 100)).all()
    assert (np.asarray(series["proc.cpu.threads"]) >= 2).all()  # main + sampler at least
    runtime = np.asarray(series["_runtime"], dtype=float)
    assert (np.diff(runtime) > 0).all()
    view = busy_run["view"]
    ts = np.asarray(series["_timestamp"], dtype=float)
    assert view.started_at - 1 <= ts.min() and ts.max() <= (view.finished_at or time.time()) + 1
    assert view.last_step == busy_run["steps"] - 1  # logging went on while the sampler wrote


def test_sampler_overhead_is_measured(busy_run: dict[str, Any]) -> None:
    """Prints the sampler's cost; timing is reported, not asserted."""
    monitor = SystemMonitor(15.0, lambda _: None)
    monitor.sample()
    n = 20
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        monitor.sample()
    cpu_each = (time.process_time() - cpu0) / n
    wall_each = (time.perf_counter() - wall0) / n
    print(
        f"\nsampler: {wall_each * 1e3:.2f} ms wall, {cpu_each * 1e3:.2f} ms CPU per sample; "
        f"at the default 15 s interval that is {100 * cpu_each / 15:.4f}% of one CPU"
    )
    if busy_run["sampler_cpu"] is not None:
        share = busy_run["sampler_cpu"] / busy_run["wall"]
        print(f"sampler thread in the busy run at 0.2 s: {100 * share:.2f}% of one CPU")
    assert cpu_each >= 0


def test_wrap_console_capture_in_process(busy_run: dict[str, Any]) -> None:
    lines = {(line["stream"], line["text"]) for line in busy_run["lines"]}
    assert ("stdout", "wrapped print line") in lines
    assert ("stderr", "wrapped stderr line") in lines


def test_gpu_metrics_with_nvml(busy_run: dict[str, Any]) -> None:
    if not nvidia_gpu_sample():
        pytest.skip("needs an NVIDIA GPU and driver (NVML); the GPU keys are not exercised here")
    series = busy_run["series"]
    for key in ("gpu.0.gpu", "gpu.0.memoryAllocated", "gpu.0.memoryAllocatedBytes", "gpu.0.temp"):
        assert key in series
    assert 0 <= float(np.max(series["gpu.0.gpu"])) <= 100


# ---------------------------------------------------------------------------------------
# The journal shared by the training thread and telemetry threads


def test_background_records_never_break_the_journal(tmp_path: Path) -> None:
    """A thread writing records while log() runs its fast path: every frame whole, sequence gap-free."""
    run = branchline.init(project="p", dir=str(tmp_path), mode="offline", settings=_QUIET)
    journal_path = run._ctx.run_dir / "journal.blj"
    stop = threading.Event()
    written = [0]

    def background() -> None:
        while not stop.is_set():
            run._journal.write(RecordKind.OUTPUT, [["stdout", time.time(), f"line {written[0]}"]])
            written[0] += 1

    data = {f"k{i}": float(i) for i in range(10)}
    run.log(data)  # the first row takes the full path; the rest the fast one
    thread = threading.Thread(target=background)
    thread.start()
    steps = 30_000
    started = time.perf_counter()
    try:
        for _ in range(steps - 1):
            run.log(data)
    finally:
        contended = (time.perf_counter() - started) / (steps - 1)
        stop.set()
        thread.join()
    alone_start = time.perf_counter()
    for _ in range(10_000):
        run.log(data)
    alone = (time.perf_counter() - alone_start) / 10_000
    run.finish()
    lock = threading.RLock()
    lock_start = time.perf_counter()
    for _ in range(100_000):
        lock.acquire()
        lock.release()
    lock_cost = (time.perf_counter() - lock_start) / 100_000
    print(
        f"\nlog(): {alone * 1e6:.2f} us/call alone, {contended * 1e6:.2f} us/call with a writer thread "
        f"({written[0]} records); lock acquire+release {lock_cost * 1e9:.0f} ns"
    )
    result = read_journal(journal_path)
    assert result.torn_bytes == 0
    seqs = [int(r[0]) for r in result.records]
    assert seqs == list(range(1, len(seqs) + 1))
    # Rows of floats are journalled as binary float rows; both kinds carry the step third.
    history = [r for r in result.records if r[1] in (RecordKind.HISTORY, RecordKind.FLOAT_ROW)]
    assert [int(r[2]) for r in history] == list(range(steps + 10_000))
    outputs = [r for r in result.records if r[1] == RecordKind.OUTPUT]
    assert written[0] > 0 and len(outputs) == written[0]


# ---------------------------------------------------------------------------------------
# Console capture in redirect mode, in a child process

_CONSOLE_SCRIPT = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    import branchline

    run = branchline.init(project="p", dir=sys.argv[1],
                          settings={"quiet": True, "console": "redirect", "x_disable_stats": True})
    print("hello stdout", flush=True)
    print("hello stderr", file=sys.stderr, flush=True)
    for i in range(5):
        sys.stdout.write(f"\\rprogress {i}/4")
        sys.stdout.flush()
        time.sleep(0.01)
    sys.stdout.write("\\n")
    sys.stdout.flush()
    os.write(1, b"raw fd write\\n")
    subprocess.run([sys.executable, "-c", "print('from child process')"], check=True)
    print("\\x1b[31mred text\\x1b[0m plain", flush=True)
    run.log({"x": 1})
    ids = {"entity": run.entity, "id": run.id}
    run.finish()
    with open(sys.argv[2], "w") as fh:
        json.dump(ids, fh)
    """
)


def test_console_redirect_mode_in_a_child_process(tmp_path: Path) -> None:
    script = tmp_path / "console_script.py"
    script.write_text(_CONSOLE_SCRIPT)
    ids_file = tmp_path / "ids.json"
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(ids_file)],
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    # What the user sees is unchanged: everything still reaches the real stdout/stderr.
    out = proc.stdout.decode()
    for text in ("hello stdout", "progress 4/4", "raw fd write", "from child process", "\x1b[31mred text"):
        assert text in out
    assert "hello stderr" in proc.stderr.decode()
    ids = json.loads(ids_file.read_text())
    with _store(tmp_path) as store:
        view = store.get_run(ids["entity"], "p", ids["id"])
        lines = store.console_lines(view.incarnation_id)
    stdout = [line["text"] for line in lines if line["stream"] == "stdout"]
    stderr = [line["text"] for line in lines if line["stream"] == "stderr"]
    assert stdout == [
        "hello stdout",
        "progress 4/4",  # the \r progress bar collapsed to its final state
        "raw fd write",
        "from child process",
        "\x1b[31mred text\x1b[0m plain",  # colours kept for the UI
    ]
    assert stderr == ["hello stderr"]
    assert [line["line_no"] for line in lines] == list(range(len(lines)))


# ---------------------------------------------------------------------------------------
# Metadata, requirements and save_code inside a temporary git repository

_TRAIN_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import branchline

    run = branchline.init(project="p", dir=sys.argv[1], save_code=True,
                          settings={"quiet": True, "console": "off", "x_disable_stats": True})
    run.log({"x": 1})
    ids = {"entity": run.entity, "id": run.id, "inc": run.incarnation_id, "dir": run.dir}
    run.finish()
    with open(sys.argv[2], "w") as fh:
        json.dump(ids, fh)
    """
)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_metadata_requirements_and_code_in_a_git_repo(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "remote", "add", "origin", "https://alice:s3cret-token@example.com/org/repo.git")
    (repo / "train.py").write_text(_TRAIN_SCRIPT)
    (repo / "README").write_text("v1\n")
    _git(repo, "add", "train.py", "README")
    _git(repo, "commit", "-q", "-m", "init")
    head = _git(repo, "rev-parse", "HEAD")
    (repo / "README").write_text("v2, uncommitted\n")  # a dirty tree
    out = tmp_path / "out"
    ids_file = tmp_path / "ids.json"
    proc = subprocess.run(
        [sys.executable, "train.py", str(out), str(ids_file)], cwd=repo, capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr.decode()
    ids = json.loads(ids_file.read_text())
    with _store(out) as store:
        view = store.get_run(ids["entity"], "p", ids["id"])
        files = {row["path"]: row for row in store.files(view.incarnation_id)}
    meta = view.metadata
    assert meta["git"]["commit"] == head
    assert meta["git"]["remote"] == "https://alice@example.com/org/repo.git"
    assert meta["git"]["dirty"] is True
    assert "s3cret" not in json.dumps(meta)
    assert meta["program"].endswith("train.py")
    assert meta["codePath"] == "train.py"
    assert meta["codeSaved"] == "code/train.py"
    assert meta["root"] == str(repo.resolve())
    assert meta["host"] == socket.gethostname()
    assert meta["executable"] == sys.executable
    assert meta["python"] and meta["os"] and meta["startedAt"] and meta["branchline_version"]
    assert meta["cpu_count_logical"] >= 1 and meta["memory"]["total"] > 0
    assert {"branchline-metadata.json", "requirements.txt", "code/train.py"} <= set(files)
    settings = branchline.Settings(root_dir=str(out))

    def stored(rel: str) -> Path:
        return run_file_path(settings, view.incarnation_id, rel)

    assert stored("code/train.py").read_text() == _TRAIN_SCRIPT
    assert json.loads(stored("branchline-metadata.json").read_text())["git"] == meta["git"]
    assert "msgpack==" in stored("requirements.txt").read_text()
    for rel, row in files.items():
        assert row["sha256"] == _sha256(stored(rel)) and row["size"] == stored(rel).stat().st_size
    assert (Path(ids["dir"]) / "code" / "train.py").read_text() == _TRAIN_SCRIPT


# ---------------------------------------------------------------------------------------
# run.save policies


def test_save_policies_and_files_changed_after_the_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(files_module, "LIVE_POLL_SECONDS", 0.1)
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    monkeypatch.chdir(work)
    for name, text in (("now.txt", "now v1"), ("live.txt", "live v1"), ("end.txt", "end v1")):
        (work / name).write_text(text)
    (work / "sub" / "a.txt").write_text("a")
    (work / "sub" / "b.txt").write_text("bb")
    (work / "sub" / "c.log").write_text("not matched")
    (tmp_path / "outside.txt").write_text("outside")
    run = branchline.init(project="p", dir=str(tmp_path), settings=_QUIET)

    def stored(rel: str) -> Path:
        return run_file_path(run._settings, run.incarnation_id, rel)

    files_dir = Path(run.dir)
    try:
        with pytest.raises(ValueError, match="policy"):
            run.save("now.txt", policy="sometimes")
        assert run.save("s3://bucket/model.pt") == []
        assert "cloud storage" in capsys.readouterr().err
        with pytest.raises(ValueError, match="base_path"):
            run.save(str(tmp_path / "outside.txt"), base_path=str(work))

        assert run.save("now.txt", policy="now") == [str(files_dir / "now.txt")]
        assert run.save("live.txt") == [str(files_dir / "live.txt")]
        assert run.save("end.txt", policy="end") == [str(files_dir / "end.txt")]
        assert run.save("sub/*.txt", policy="now") == [str(files_dir / "sub/a.txt"), str(files_dir / "sub/b.txt")]
        # An absolute glob without base_path keeps paths relative to its fixed directory.
        assert run.save(str(work / "sub" / "*.txt"), policy="now") == [
            str(files_dir / "a.txt"),
            str(files_dir / "b.txt"),
        ]
        assert os.path.realpath(files_dir / "now.txt") == str((work / "now.txt").resolve())
        assert (files_dir / "sub" / "a.txt").read_text() == "a"

        assert stored("now.txt").read_text() == "now v1"
        assert stored("live.txt").read_text() == "live v1"
        assert not stored("end.txt").exists()

        (work / "now.txt").write_text("now v2 changed")
        (work / "live.txt").write_text("live v2 changed")
        (work / "end.txt").write_text("end v2 changed")
        assert _wait_for(lambda: stored("live.txt").read_text() == "live v2 changed")
        assert stored("now.txt").read_text() == "now v1"  # "now" is stored once
        assert not stored("end.txt").exists()  # "end" waits for finish

        # Same content, new mtime: looked at again, not stored again.
        part = run_files(run._ctx)
        results: list[tuple[str, bool]] = []
        original = part.store

        def counting(source: Path, rel: str) -> bool:
            stored_now = original(source, rel)
            results.append((rel, stored_now))
            return stored_now

        monkeypatch.setattr(part, "store", counting)
        os.utime(work / "live.txt")
        assert _wait_for(lambda: any(rel == "live.txt" for rel, _ in results))
        live_results = [done for rel, done in results if rel == "live.txt"]
        assert live_results and not any(live_results)
        (work / "live.txt").write_text("live v3 just before finish")
    finally:
        run.finish()
    assert stored("live.txt").read_text() == "live v3 just before finish"
    assert stored("end.txt").read_text() == "end v2 changed"
    assert stored("now.txt").read_text() == "now v1"
    with _store(tmp_path) as store:
        rows = {row["path"]: row for row in store.files(run.incarnation_id)}
    assert {"now.txt", "live.txt", "end.txt", "sub/a.txt", "sub/b.txt", "a.txt", "b.txt"} <= set(rows)
    assert "sub/c.log" not in rows
    for rel in ("now.txt", "live.txt", "end.txt", "sub/b.txt"):
        assert rows[rel]["sha256"] == _sha256(stored(rel))
        assert rows[rel]["size"] == stored(rel).stat().st_size


# ---------------------------------------------------------------------------------------
# Alerts


class _WebhookReceiver:
    def __init__(self) -> None:
        received: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append({"path": self.path, "json": json.loads(body)})
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/secret-path"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], email.message.Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 Message accepted"


def test_alerts_reach_a_webhook_and_an_smtp_server_rate_limited(tmp_path: Path) -> None:
    from aiosmtpd.controller import Controller

    receiver = _WebhookReceiver()
    inbox = _Inbox()
    smtp_port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        run = branchline.init(
            project="p",
            dir=str(tmp_path),
            settings={
                **_QUIET,
                "alert_webhook_url": receiver.url,
                "smtp_url": f"smtp://127.0.0.1:{smtp_port}?from=runs@example.com",
                "alert_email_to": "a@example.com, b@example.com",
            },
        )
        try:
            with pytest.raises(ValueError, match="level"):
                run.alert("bad", "x", level="LOUD")
            with pytest.raises(TypeError):
                run.alert("bad", "x", wait_duration="soon")
            run.alert("loss high", "loss is 9.1", "WARN", wait_duration=60)
            run.alert("loss high", "loss is 9.3", "WARN", wait_duration=60)  # within 60 s: skipped
            run.alert("done", "epoch 1", AlertLevel.ERROR, wait_duration=timedelta(0))
            run.alert("done", "epoch 2", AlertLevel.ERROR, wait_duration=timedelta(0))
            for i in range(100):
                run.log({"x": i})
        finally:
            run.finish()  # waits for queued deliveries
        with _store(tmp_path) as store:
            recorded = store.alerts(run.incarnation_id)
    finally:
        controller.stop()
        receiver.close()
    expected = [("loss high", "loss is 9.1", "WARN"), ("done", "epoch 1", "ERROR"), ("done", "epoch 2", "ERROR")]
    assert [(a["title"], a["text"], a["level"]) for a in recorded] == expected
    posts = [p["json"] for p in receiver.received]
    assert [(p["branchline"]["title"], p["branchline"]["text"], p["branchline"]["level"]) for p in posts] == expected
    assert all(p["branchline"]["run"] == run.path for p in posts)
    assert "[WARN] loss high" in posts[0]["text"] and "loss is 9.1" in posts[0]["text"]
    assert {p["path"] for p in receiver.received} == {"/hooks/T000/secret-path"}
    assert len(inbox.messages) == 3
    for (sender, recipients, message), (title, text, level) in zip(inbox.messages, expected, strict=True):
        assert sender == "runs@example.com"
        assert sorted(recipients) == ["a@example.com", "b@example.com"]
        assert message["Subject"] == f"[branchline] {level}: {title}"
        assert text in message.get_payload()


def test_unreachable_webhook_does_not_disturb_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = _free_port()  # nothing listens there once the probe socket is closed
    url = f"http://127.0.0.1:{port}/services/secret-token"
    run = branchline.init(project="p", dir=str(tmp_path), settings={**_QUIET, "alert_webhook_url": url})
    try:
        for i in range(3000):
            run.log({"x": i})
            if i % 1000 == 0:
                run.alert(f"alert {i}", "text", "ERROR")
        assert run.step == 3000
    finally:
        run.finish()
    err = capsys.readouterr().err
    assert err.count("could not deliver an alert to the webhook") == 1, err
    assert "secret-token" not in err  # the URL's secret path is not printed
    with _store(tmp_path) as store:
        view = store.get_run(run.entity, "p", run.id)
        assert view.last_step == 2999 and view.state == "finished"
        assert len(store.alerts(view.incarnation_id)) == 3  # still recorded on the run


# ---------------------------------------------------------------------------------------
# Offline, then sync


def test_offline_run_telemetry_arrives_with_sync(tmp_path: Path) -> None:
    from branchline.sdk.sink import LocalSink
    from branchline.sdk.sync import sync_journal

    (tmp_path / "kept.txt").write_text("kept")
    run = branchline.init(
        project="p",
        dir=str(tmp_path),
        mode="offline",
        settings={"quiet": True, "console": "off", "x_stats_sampling_interval": 0.1},
    )
    try:
        run.save(str(tmp_path / "kept.txt"), base_path=str(tmp_path), policy="now")
        run.alert("offline", "recorded, delivered nowhere")
        started = time.monotonic()
        while time.monotonic() - started < 0.5:
            run.log({"x": 1.0})
    finally:
        run.finish()
    assert not (tmp_path / "branchline" / "store.db").exists()  # nothing stored until sync
    sink = LocalSink(f"sqlite:///{tmp_path}/branchline/store.db")
    try:
        sync_journal(run._ctx.run_dir / "journal.blj", sink)
    finally:
        sink.close()
    with _store(tmp_path) as store:
        view = store.get_run(run.entity, "p", run.id)
        assert view.metadata["python"] and "cpu_count_logical" in view.metadata  # METADATA merged
        assert "cpu" in store.history_keys(view.incarnation_id, stream=1)
        paths = {row["path"] for row in store.files(view.incarnation_id)}
        assert {"kept.txt", "requirements.txt", "branchline-metadata.json"} <= paths
        assert [a["title"] for a in store.alerts(view.incarnation_id)] == ["offline"]


def test_python_logging_is_forwarded_into_the_console_log(tmp_path: Path) -> None:
    import logging

    run = branchline.init(
        project="logs",
        dir=str(tmp_path),
        settings={"quiet": True, "x_disable_stats": True, "console": "off", "capture_loggers": {"trainer": "INFO"}},
    )
    logging.getLogger("trainer").info("epoch 1 done")
    logging.getLogger("trainer").debug("too chatty")  # below the level: not forwarded
    logging.getLogger("trainer").warning("lr is high")
    logging.getLogger("elsewhere").warning("not captured")
    run.finish()
    assert not logging.getLogger("trainer").handlers  # detached at finish
    store = open_store(f"sqlite:///{tmp_path / 'branchline' / 'store.db'}")
    try:
        view = store.require_run(run.entity, "logs", run.id)
        lines = [(line["stream"], line["text"]) for line in store.console_lines(view.incarnation_id)]
    finally:
        store.close()
    assert ("stdout", "INFO:trainer:epoch 1 done") in lines
    assert ("stderr", "WARNING:trainer:lr is high") in lines
    assert not any("too chatty" in text or "not captured" in text for _, text in lines)


def test_system_metrics_read_through_the_api_as_system_keys(tmp_path: Path) -> None:
    run = branchline.init(
        project="sys", dir=str(tmp_path), settings={"quiet": True, "console": "off", "x_stats_sampling_interval": 0.1}
    )
    for i in range(5):
        run.log({"a": float(i)})
        time.sleep(0.1)
    run.finish()
    api = branchline.Api(overrides={"root_dir": str(tmp_path)})
    api_run = api.run(f"{run.entity}/sys/{run.id}")
    rows = api_run.history(stream="system", pandas=False)
    assert rows and "system.cpu" in rows[-1] and "_timestamp" in rows[-1] and "cpu" not in rows[-1]
    table = api_run.history(stream="system", keys=["system.proc.memory.rssMB"])
    assert list(table.columns)[-1] == "system.proc.memory.rssMB" and (table["system.proc.memory.rssMB"] > 0).all()
    api.close()
