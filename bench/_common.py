"""Helpers shared by the bench scripts: repeats, fresh subprocesses, tables, verdicts.

Only the standard library at import time, so the peer workers (run by another interpreter, without
branchline) can share it.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
CACHE = REPO / ".bench"  # gitignored
PEER_VENV_PYTHON = CACHE / "peers-venv" / "bin" / "python"

__all__ = [
    "BENCH_DIR",
    "CACHE",
    "REPO",
    "Row",
    "dir_bytes",
    "fmt",
    "machine_line",
    "median",
    "peer_python",
    "print_table",
    "run_child",
    "spread",
    "timed",
    "verdict",
]


def median(values: Iterable[float]) -> float:
    vals = [v for v in values if v == v]
    return statistics.median(vals) if vals else float("nan")


def spread(values: Sequence[float]) -> str:
    """`[min–max]` of the repeats, for the table's notes."""
    vals = [v for v in values if v == v]
    if len(vals) < 2:
        return ""
    return f"[{fmt(min(vals))}–{fmt(max(vals))}]"


def fmt(value: float | int | str | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    if value != value:
        return "nan"
    if value == 0:
        return "0"
    mag = abs(value)
    if mag >= 1000:
        return f"{value:,.0f}"
    if mag >= 100:
        return f"{value:.0f}"
    if mag >= 10:
        return f"{value:.1f}"
    if mag >= 1:
        return f"{value:.2f}"
    return f"{value:.{digits}f}"


def timed(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> tuple[list[float], Any]:
    """Wall seconds of `repeats` calls (after `warmup` untimed ones), and the last result."""
    result: Any = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def verdict(value: float, target: float, *, higher_is_better: bool = False) -> str:
    if value != value:
        return "n/a"
    ok = value >= target if higher_is_better else value <= target
    return "PASS" if ok else "MISS"


class Row:
    """One line of a result table."""

    def __init__(
        self,
        what: str,
        measured: float | str | None,
        unit: str = "",
        *,
        baseline: float | str | None = None,
        baseline_name: str = "",
        ratio: float | None = None,
        target: str = "",
        status: str = "",
        note: str = "",
    ) -> None:
        self.cells = [
            what,
            f"{fmt(measured)} {unit}".strip(),
            (f"{fmt(baseline)} {baseline_name}".strip() if baseline is not None else "–"),
            (f"{ratio:.2f}×" if ratio is not None and ratio == ratio else "–"),
            target or "–",
            status or "–",
            note,
        ]


def print_table(title: str, rows: Sequence[Row]) -> None:
    """A plain-text table (also valid Markdown) on stdout."""
    head = ["what", "measured (median)", "baseline / floor, same run", "ratio", "target", "result", "notes"]
    cells = [head] + [r.cells for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    print(f"\n## {title}\n")
    for n, line in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    sys.stdout.flush()


def machine_line() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return (
        f"{platform.node()}: {os.cpu_count()} vCPU, Python {platform.python_version()}, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (shared machine: numbers are noisy)"
    )


def dir_bytes(path: Path) -> int:
    """Sum of st_size of every file under `path`."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(root, name)).st_size
    return total


def peer_python() -> str | None:
    """The interpreter that has the peer trackers: $BENCH_PEER_PYTHON, .bench/peers-venv, else none."""
    chosen = os.environ.get("BENCH_PEER_PYTHON")
    if chosen:
        return chosen
    if PEER_VENV_PYTHON.exists():
        return str(PEER_VENV_PYTHON)
    return None


def importable(python: str, module: str) -> str | None:
    """The module's version if `python` can import it, else None."""
    code = (
        "import importlib.metadata as m, importlib.util as u, sys\n"
        f"spec = u.find_spec({module!r})\n"
        f"print(m.version({module!r}) if spec else '')"
    )
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = out.stdout.strip()
    return version or None


def _tree_rss(pid: int) -> int:
    try:
        import psutil
    except ImportError:
        return 0
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def run_child(
    python: str,
    script: Path,
    args: dict[str, Any],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 3600,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """Run `script` in a fresh process with a JSON argument; returns the JSON dict it prints last.

    Adds `spawn_wall` (parent-measured whole-process seconds) and `tree_rss_peak` (bytes, process
    and descendants, sampled every 50 ms).
    """
    payload = dict(args)
    payload["spawn_time"] = time.time()
    full_env = {**os.environ, **(env or {})}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [python, str(script), json.dumps(payload)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        cwd=str(cwd) if cwd else None,
    )
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return {"error": f"timed out after {timeout:.0f} s", "stderr": err[-2000:]}
    finally:
        stop.set()
        sampler.join()
    wall = time.perf_counter() - t0
    result: dict[str, Any] = {}
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            try:
                result = json.loads(line)
                break
            except ValueError:
                continue
    if not result:
        result = {"error": f"exit code {proc.returncode}, no result", "stderr": err[-3000:]}
    elif proc.returncode != 0:
        result.setdefault("error", f"exit code {proc.returncode}")
        result["stderr"] = err[-3000:]
    result["spawn_wall"] = wall
    result["tree_rss_peak"] = peak
    return result
