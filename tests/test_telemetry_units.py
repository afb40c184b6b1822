"""Unit tests for system metrics, console capture and run metadata, on the real machine."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from branchline.sdk import console as console_module
from branchline.sdk.console import (
    ConsoleCapture,
    LineBatch,
    LoggingForwarder,
    TerminalEmulator,
)
from branchline.sdk.metadata import collect_metadata, requirements
from branchline.sdk.system_monitor import (
    SystemMonitor,
    nvidia_gpu_info,
    nvidia_gpu_sample,
)

_HAS_NVIDIA = bool(nvidia_gpu_sample())
_SRC_ROOT = str(Path(console_module.__file__).resolve().parents[2])


def _wait_for(condition: Callable[[], bool], limit: float = 10.0) -> bool:
    """Poll until `condition` holds; a liveness guard, not a timing assertion."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


# ---------------------------------------------------------------------------------------
# SystemMonitor


def test_monitor_sample_keys_and_plausible_values() -> None:
    monitor = SystemMonitor(1.0, lambda _: None, disk_paths=("/",))
    stop = threading.Event()

    def burn() -> None:
        while not stop.is_set():
            sum(i * i for i in range(1000))

    monitor.sample()  # baseline for rss and cpu
    before = monitor.sample()
    burner = threading.Thread(target=burn, daemon=True)
    burner.start()
    block = bytearray(b"\x01") * (160 * 1024 * 1024)  # filled, so the pages are resident
    try:
        time.sleep(0.5)
        after = monitor.sample()
    finally:
        stop.set()
        burner.join()

    expected = {
        "cpu",
        "proc.cpu.threads",
        "memory_percent",
        "proc.memory.availableMB",
        "proc.memory.rssMB",
        "proc.memory.percent",
        "network.sent",
        "network.recv",
        "disk./.usagePercent",
        "disk./.usageGB",
    }
    assert expected <= after.keys()
    assert all(isinstance(v, float) for v in after.values())
    assert 0.0 < after["cpu"] <= 100.0
    assert after["proc.cpu.threads"] >= 2
    assert after["proc.memory.rssMB"] - before["proc.memory.rssMB"] >= 100
    assert 0.0 < after["proc.memory.percent"] < 100.0
    assert 0.0 < after["memory_percent"] <= 100.0
    assert after["proc.memory.availableMB"] > 0
    assert after["network.sent"] >= 0 and after["network.recv"] >= 0
    assert 0.0 < after["disk./.usagePercent"] <= 100.0
    assert after["disk./.usageGB"] > 0
    if "disk.in" in after:  # absent where the kernel exposes no disk counters
        assert after["disk.in"] >= 0 and after["disk.out"] >= 0
    del block


def test_monitor_counts_cpu_of_child_processes() -> None:
    monitor = SystemMonitor(1.0, lambda _: None)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nend = time.time() + 5\nwhile time.time() < end: pass",
        ]
    )
    try:
        assert _wait_for(lambda: monitor.sample().get("cpu", 0.0) > 20.0)
    finally:
        child.kill()
        child.wait()


def test_monitor_thread_emits_and_stop_is_idempotent() -> None:
    samples: list[dict[str, float]] = []
    monitor = SystemMonitor(0.1, samples.append)
    monitor.start()
    monitor.start()  # second start is a no-op
    try:
        assert _wait_for(lambda: len(samples) >= 2)
    finally:
        monitor.stop()
    monitor.stop()
    count = len(samples)
    time.sleep(0.3)
    assert len(samples) == count
    assert "cpu" in samples[0]  # primed at start, so even the first sample has it
    assert "proc.memory.rssMB" in samples[-1]


@pytest.mark.parametrize("given", [0.0, -5.0, 0.01, float("nan")])
def test_monitor_interval_is_clamped(given: float) -> None:
    assert SystemMonitor(given, lambda _: None).interval == 0.1


def test_monitor_interval_kept_when_valid() -> None:
    assert SystemMonitor(2.5, lambda _: None).interval == 2.5
    assert SystemMonitor(float("inf"), lambda _: None).interval > 0


def test_monitor_survives_failures_and_reports_once(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    calls: list[int] = []

    def bad_emit(_: dict[str, float]) -> None:
        calls.append(1)
        raise RuntimeError("sink down")

    missing = str(tmp_path / "does-not-exist")
    monitor = SystemMonitor(0.1, bad_emit, disk_paths=(missing, "/"), on_error=errors.append)
    monitor.start()
    try:
        assert _wait_for(lambda: len(calls) >= 3)
    finally:
        monitor.stop()
    sample = monitor.sample()
    assert "disk./.usageGB" in sample
    assert f"disk.{missing}.usageGB" not in sample
    kinds = sorted(type(e).__name__ for e in errors)
    assert kinds.count("RuntimeError") == 1  # the failing emit, once
    assert len(errors) == 2  # plus the missing disk path, once


def test_monitor_of_other_pid() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        monitor = SystemMonitor(1.0, lambda _: None, pid=child.pid)
        # Right after spawning, the child may still be exec-ing with hardly any memory.
        assert _wait_for(lambda: monitor.sample().get("proc.memory.rssMB", 0.0) > 1)
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(not _HAS_NVIDIA, reason="needs an NVIDIA GPU and driver (NVML)")
def test_gpu_sample_keys() -> None:
    sample = nvidia_gpu_sample()
    for key in ("gpu", "memory", "memoryAllocated", "memoryAllocatedBytes", "temp"):
        assert f"gpu.0.{key}" in sample
    assert 0.0 <= sample["gpu.0.gpu"] <= 100.0
    info = nvidia_gpu_info()
    assert info and info[0]["name"]
    assert "gpu.0.gpu" in SystemMonitor(1.0, lambda _: None).sample()


def test_gpu_functions_are_quiet_without_gpu() -> None:
    # Runs everywhere: with or without a GPU these must return plain data, never raise.
    assert isinstance(nvidia_gpu_sample(), dict)
    assert isinstance(nvidia_gpu_info(), list)


# ---------------------------------------------------------------------------------------
# TerminalEmulator


def _emulate(*chunks: str, stream: str = "stdout") -> list[tuple[str, str]]:
    emulator = TerminalEmulator()
    for chunk in chunks:
        emulator.feed(chunk, stream)
    return emulator.flush()


def test_progress_bar_collapses_to_final_text() -> None:
    text = "progress 0/4\rprogress 1/4\rprogress 2/4\rprogress 3/4\rprogress 4/4\n"
    assert _emulate(text) == [("stdout", "progress 4/4")]


def test_carriage_return_overwrites_like_a_terminal() -> None:
    assert _emulate("abcdef\rxy\n") == [("stdout", "xycdef")]
    assert _emulate("abc\r\n") == [("stdout", "abc")]
    assert _emulate("a\r", "\nb\n") == [("stdout", "a"), ("stdout", "b")]


def test_erase_line_sequences() -> None:
    assert _emulate("abcdef\r\x1b[Kxy\n") == [("stdout", "xy")]
    assert _emulate("abcdef\x1b[2K\rxy\n") == [("stdout", "xy")]


def test_ansi_colours_are_kept() -> None:
    red = "\x1b[31mred\x1b[0m plain\n"
    assert _emulate(red) == [("stdout", "\x1b[31mred\x1b[0m plain")]
    # A sequence split across two writes is still recognised.
    assert _emulate("\x1b[3", "2mgo\x1b[0m\n") == [("stdout", "\x1b[32mgo\x1b[0m")]
    # Non-colour controls (`tput sgr0` sends a charset switch, OSC sets the title) vanish.
    assert _emulate("\x1b(B\x1b[mplain\x1b]0;title\x07\n") == [("stdout", "plain")]
    # A coloured progress bar collapses without piling up escape codes.
    bar = "".join(f"\r\x1b[32m{i}/9\x1b[0m" for i in range(10)) + "\n"
    assert _emulate(bar) == [("stdout", "\x1b[32m9/9\x1b[0m")]


def test_streams_are_kept_apart() -> None:
    emulator = TerminalEmulator()
    emulator.feed("out ", "stdout")
    emulator.feed("oops\n", "stderr")
    emulator.feed("line\n", "stdout")
    emulator.feed("partial", "stderr")
    assert emulator.pop_lines() == [("stderr", "oops"), ("stdout", "out line")]
    assert emulator.pop_lines() == []
    assert emulator.flush() == [("stderr", "partial")]
    assert emulator.flush() == []


# ---------------------------------------------------------------------------------------
# ConsoleCapture


_REDIRECT_SCRIPT = textwrap.dedent(
    """
    import json, os, subprocess, sys
    from branchline.sdk.console import ConsoleCapture

    got = []
    capture = ConsoleCapture("redirect", got.extend)
    capture.start()
    print("hello from print")
    sys.stderr.write("to stderr\\n")
    os.write(1, b"from C\\n")
    subprocess.run(["echo", "child"], check=True)
    print("bar 1/3\\rbar 2/3\\rbar 3/3")
    capture.stop()
    capture.stop()
    print("AFTER-STOP")
    print("RESULT " + json.dumps([[s, t] for s, t, _ in got]))
    """
)


@pytest.mark.skipif(shutil.which("echo") is None, reason="needs an `echo` program")
def test_redirect_mode_catches_fd_level_output_in_subprocess() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_SRC_ROOT, env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", _REDIRECT_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    # What the user would have seen on the terminal is unchanged.
    for text in ("hello from print", "from C", "child", "bar 3/3", "AFTER-STOP"):
        assert text in proc.stdout
    assert "to stderr" in proc.stderr

    result_line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    captured = [tuple(pair) for pair in json.loads(result_line[len("RESULT ") :])]
    assert ("stdout", "hello from print") in captured
    assert ("stderr", "to stderr") in captured
    assert ("stdout", "from C") in captured
    assert ("stdout", "child") in captured
    assert ("stdout", "bar 3/3") in captured
    assert all("AFTER-STOP" not in line for _, line in captured)


_PTY_SCRIPT = textwrap.dedent(
    """
    import json, os, subprocess, sys
    from branchline.sdk.console import ConsoleCapture

    got = []
    capture = ConsoleCapture("redirect", got.extend)
    capture.start()
    print("isatty", sys.stdout.isatty(), os.isatty(1))
    subprocess.run(["sh", "-c", "test -t 1 && echo child-sees-a-tty"], check=False)
    for i in range(5000):
        print(f"bulk {i}")
    capture.stop()
    print("RESULT " + json.dumps([[s, t] for s, t, _ in got]))
    """
)


@pytest.mark.skipif(
    sys.platform == "win32" or shutil.which("sh") is None,
    reason="needs POSIX pseudo-terminals and sh",
)
def test_redirect_mode_keeps_a_terminal_a_terminal() -> None:
    import pty

    master, slave = pty.openpty()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_SRC_ROOT, env.get("PYTHONPATH")]))
    proc = subprocess.Popen([sys.executable, "-c", _PTY_SCRIPT], stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end of the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    # The outer terminal turns "\n" into "\r\n"; that is its business, not ours.
    shown = b"".join(chunks).decode().replace("\r\n", "\n")
    assert "isatty True True\n" in shown
    assert "child-sees-a-tty\n" in shown
    assert sum(line.startswith("bulk ") for line in shown.splitlines()) == 5000

    result_line = next(x for x in shown.splitlines() if x.startswith("RESULT "))
    captured = [tuple(pair) for pair in json.loads(result_line[len("RESULT ") :])]
    assert captured[0] == ("stdout", "isatty True True")
    assert ("stdout", "child-sees-a-tty") in captured
    assert ("stdout", "bulk 4999") in captured
    assert len(captured) == 5002


def test_wrap_mode_tees_python_writes(capsys: pytest.CaptureFixture[str]) -> None:
    batches: list[LineBatch] = []
    stdout_before = sys.stdout
    capture = ConsoleCapture("wrap", batches.append)
    capture.start()
    try:
        print("wrapped line")
        sys.stderr.write("wrapped error\n")
        sys.stdout.write("count 1\rcount 2\n")
        assert sys.stdout is stdout_before  # the object is kept, only `write` is wrapped
        assert isinstance(sys.stdout.isatty(), bool)
        assert sys.stdout.encoding
        sys.stdout.flush()
        print("no newline at end", end="")
    finally:
        capture.stop()
    capture.stop()
    print("after stop")

    lines = [(stream, text) for batch in batches for stream, text, _ in batch]
    assert lines.count(("stdout", "wrapped line")) == 1
    assert ("stderr", "wrapped error") in lines
    assert ("stdout", "count 2") in lines
    assert ("stdout", "no newline at end") in lines
    assert all("after stop" not in text for _, text in lines)
    assert all(isinstance(ts, float) for batch in batches for _, _, ts in batch)
    assert "write" not in vars(sys.stdout)

    seen = capsys.readouterr()
    assert "wrapped line\n" in seen.out
    assert "count 1\rcount 2\n" in seen.out  # the terminal gets the raw bytes
    assert "after stop" in seen.out
    assert "wrapped error\n" in seen.err


def test_wrap_mode_batches_and_survives_a_failing_emit() -> None:
    errors: list[BaseException] = []
    attempts: list[int] = []

    def failing(batch: LineBatch) -> None:
        attempts.append(len(batch))
        raise OSError("disk full")

    capture = ConsoleCapture("wrap", failing, flush_interval=0.05, on_error=errors.append)
    capture.start()
    try:
        for i in range(50):
            print(f"line {i}")
        assert _wait_for(lambda: len(attempts) >= 1)
        print("more")
    finally:
        capture.stop()
    assert sum(attempts) == 51
    assert len(attempts) < 51  # lines were batched, not emitted one by one
    assert len(errors) == 1


def test_off_mode_does_nothing() -> None:
    batches: list[LineBatch] = []
    write_before = sys.stdout.write
    capture = ConsoleCapture("off", batches.append)
    capture.start()
    print("not captured")
    assert sys.stdout.write == write_before
    capture.stop()
    assert batches == []


def test_logging_forwarder_marks_warnings_as_stderr() -> None:
    received: LineBatch = []
    logger = logging.getLogger("branchline-test-forwarder")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = LoggingForwarder(received.extend)
    logger.addHandler(handler)
    try:
        logger.info("step %d done", 3)
        logger.warning("two\nlines")
    finally:
        logger.removeHandler(handler)
    assert [(s, t) for s, t, _ in received] == [
        ("stdout", "INFO:branchline-test-forwarder:step 3 done"),
        ("stderr", "WARNING:branchline-test-forwarder:two"),
        ("stderr", "lines"),
    ]


# ---------------------------------------------------------------------------------------
# Metadata


def test_metadata_fields_outside_git(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("print(1)\n")
    meta = collect_metadata(str(script), str(tmp_path))
    for key in (
        "os",
        "python",
        "executable",
        "program",
        "args",
        "host",
        "cpu_count_logical",
        "memory",
        "disk",
        "branchline_version",
        "startedAt",
    ):
        assert key in meta, key
    assert "cudaVersion" in meta
    assert meta["program"] == str(script)
    assert meta["codePath"] == "train.py"
    assert meta["executable"] == sys.executable
    assert meta["args"] == sys.argv[1:]
    memory = meta["memory"]
    assert isinstance(memory, dict) and memory["total"] > 0
    disk = meta["disk"]
    assert isinstance(disk, dict) and disk["/"]["total"] > 0
    assert isinstance(meta["cpu_count_logical"], int) and meta["cpu_count_logical"] >= 1
    if Path("/proc/cpuinfo").exists():
        cpu = meta.get("cpu")
        assert isinstance(cpu, dict) and cpu["model"]
    if not nvidia_gpu_info():
        assert "gpu_count" not in meta and meta["cudaVersion"] is None
    if shutil.which("git") is not None:
        inside = subprocess.run(
            ["git", "-C", str(tmp_path), "rev-parse", "--git-dir"],
            capture_output=True,
            check=False,
        )
        if inside.returncode != 0:  # tmp dirs can sit inside someone's repository
            assert "git" not in meta


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git program")
def test_metadata_git_fields(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        done = subprocess.run(
            [
                "git",
                "-C",
                str(tmp_path),
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.com",
                *args,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    git("init", "-q", "-b", "trunk")
    git("remote", "add", "origin", "https://user:secret@example.com/team/repo.git")
    (tmp_path / "train.py").write_text("print(1)\n")
    git("add", "train.py")
    git("commit", "-q", "-m", "first")
    commit = git("rev-parse", "HEAD")

    meta = collect_metadata(str(tmp_path / "train.py"), str(tmp_path))
    assert meta["git"] == {
        "commit": commit,
        "branch": "trunk",
        "remote": "https://user@example.com/team/repo.git",  # the token is not recorded
        "dirty": False,
    }

    (tmp_path / "train.py").write_text("print(2)\n")
    dirty = collect_metadata(None, str(tmp_path))["git"]
    assert isinstance(dirty, dict) and dirty["dirty"] is True
    assert "program" not in collect_metadata(None, str(tmp_path))


def test_requirements_lists_installed_distributions() -> None:
    text = requirements()
    lines = text.splitlines()
    assert lines == sorted(lines, key=str.lower)
    assert any(line.lower().startswith("pytest==") for line in lines)
    assert all("==" in line for line in lines)
