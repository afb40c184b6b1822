"""Artifacts: log and download N MB in 1,000 files vs a plain copy on the same disk; re-log unchanged.

    python bench/bench_artifacts.py                 # 1 GB, 1,000 files, 5 rounds
    python bench/bench_artifacts.py --size-mb 100   # quicker

Targets (DESIGN.md, issue 8): log and download within 2x of `shutil.copytree` of the same files in
the same run, and re-logging the unchanged artifact in at most 1 s. The digest cache is empty at
the first log, so hashing every byte is part of the measured time, and the log is timed until
`artifact.wait()` returns (the version is committed).

Fairness: every timed step starts after writing and deleting twice the bytes it will write (see
`_prime`) and `os.sync()`, reads a source that is already in the page cache, and writes new files
on the same disk. Each round times a plain copy right next to the log
and another right next to the download, alternating which goes first, and the ratios are taken
within the round; the figures are medians over the rounds (this machine's CPUs and disk are
shared, so single timings are noisy).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import branchline
from branchline.artifacts import public
from branchline.store import open_store


def _make_data(root: Path, size_mb: int, files: int) -> int:
    root.mkdir(parents=True)
    per = max(1, size_mb * (1 << 20) // files)
    block = os.urandom(per + files)  # distinct content per file: slices at different offsets
    for i in range(files):
        (root / f"shard-{i // 100:02d}").mkdir(exist_ok=True)
        (root / f"shard-{i // 100:02d}" / f"part-{i:04d}.bin").write_bytes(block[i : i + per])
    return per * files


_WORK = Path(tempfile.gettempdir())


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


_PRIME_BYTES = 0


def _prime(work: Path) -> None:
    """Write and delete twice as many bytes as a step will write, so every step starts alike.

    Writing into memory the guest freed a moment ago is several times faster on this VM than into
    memory it has not touched for a while (the host takes idle pages back): without this, whichever
    step ran second after a deletion measured 2-10x slower, whatever it was.
    """
    block = b"\0" * (1 << 20)
    scratch = work / "primer"
    with open(scratch, "wb") as fh:
        for _ in range(2 * _PRIME_BYTES // len(block) + 1):
            fh.write(block)
    os.sync()
    scratch.unlink()


def _cpu() -> float:
    """CPU seconds of this process, every thread, user + system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


_CPU: dict[str, float] = {}


def _timed_to_disk(fn: Callable[[], object], key: str = "") -> tuple[float, float]:
    """(seconds until `fn` returns, seconds until its writes are on disk), from a clean start.

    The CPU time until `fn` returns goes to `_CPU[key]`: it varies less with the machine's load
    than wall time, and shows how much work each side does.
    """
    _prime(_WORK)
    os.sync()  # no writeback pending from the previous step
    c0 = _cpu()
    t0 = time.perf_counter()
    fn()
    t1 = time.perf_counter()
    _CPU[key] = _cpu() - c0
    os.sync()
    return t1 - t0, time.perf_counter() - t0


Round = dict[str, float]


def _trial(work: Path, data: Path, n: int) -> Round:
    """One round in fresh directories and an empty digest cache."""
    os.environ["BRANCHLINE_CACHE_DIR"] = str(work / f"cache-{n}")  # empty: the first log hashes everything
    os.environ["BRANCHLINE_ARTIFACT_STORAGE"] = (work / f"blobs-{n}").as_uri()
    out: Round = {}
    run = branchline.init(
        project=f"bench{n}", dir=str(work), settings={"quiet": True, "x_disable_stats": True, "console": "off"}
    )

    def log() -> None:
        art = branchline.Artifact("data", "dataset")
        art.add_dir(data)
        run.log_artifact(art).wait()

    def copy(key: str) -> None:
        target = work / f"copy-{n}"
        out[key], out[key + "_disk"] = _timed_to_disk(lambda: shutil.copytree(data, target), key)
        out[key + "_cpu"] = _CPU[key]
        shutil.rmtree(target)

    copy_first = n % 2 == 0  # alternate, so neither side always runs on the warmer machine
    if copy_first:
        copy("copy_log")
    out["log"], out["log_disk"] = _timed_to_disk(log, "log")
    out["log_cpu"] = _CPU["log"]
    if not copy_first:
        copy("copy_log")
    out["relog"] = _timed(log)
    entity = run.entity
    run.finish()
    store = open_store(f"sqlite:///{work / 'branchline' / 'store.db'}")
    try:
        logged = public.artifact(store, f"{entity}/bench{n}/data:latest")
        assert logged.version == "v0", logged.version
        if not copy_first:
            copy("copy_download")
        out["download"], out["download_disk"] = _timed_to_disk(
            lambda: logged.download(work / f"download-{n}"), "download"
        )
        out["download_cpu"] = _CPU["download"]
        if copy_first:
            copy("copy_download")
        out["again"] = _timed(lambda: logged.download(work / f"download-{n}"))
    finally:
        store.close()
    for name in (f"download-{n}", f"blobs-{n}"):
        shutil.rmtree(work / name, ignore_errors=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=5, help="rounds (at least 3); medians are reported")
    parser.add_argument("--workdir", default=None, help="where to put the data (default: a temp dir)")
    args = parser.parse_args()

    global _WORK, _PRIME_BYTES
    work = _WORK = Path(tempfile.mkdtemp(prefix="bench-artifacts-", dir=args.workdir))
    try:
        data = work / "data"
        _PRIME_BYTES = _make_data(data, args.size_mb, args.files)
        mb = _PRIME_BYTES / (1 << 20)
        rounds = [_trial(work, data, n) for n in range(max(3, args.trials))]
        med = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}

        def ratio(key: str, base: str) -> float:
            return statistics.median(r[key] / r[base] for r in rounds)

        def line(label: str, key: str, base: str, target: str = "") -> str:
            secs = med[key]
            return f"| {label} | {secs:.3f} s | {mb / secs:.0f} MB/s | {ratio(key, base):.2f}x | {target} |"

        print(f"artifact: {mb:.0f} MB in {args.files} files, medians of {len(rounds)} rounds ({work})\n")
        print("| step | time | throughput | vs plain copy (same round) | target |")
        print("| --- | --- | --- | --- | --- |")
        print(line("plain copy (shutil.copytree), next to log", "copy_log", "copy_log"))
        print(line("log_artifact + wait (hash + store)", "log", "copy_log", "<= 2x"))
        print(line("plain copy, next to download", "copy_download", "copy_download"))
        print(line("download (sha256-verified)", "download", "copy_download", "<= 2x"))
        print(line("log, until on disk (+ os.sync())", "log_disk", "copy_log_disk"))
        print(line("download, until on disk", "download_disk", "copy_download_disk"))
        print(line("log, CPU time (all threads)", "log_cpu", "copy_log_cpu").replace("MB/s", "MB/cpu-s"))
        print(line("download, CPU time", "download_cpu", "copy_download_cpu").replace("MB/s", "MB/cpu-s"))
        print(f"| re-log unchanged | {med['relog']:.3f} s | | | <= 1 s |")
        print(f"| download again (all present) | {med['again']:.3f} s | | | |")
        print()
        for n, r in enumerate(rounds):
            print(
                f"round {n}: log {r['log']:.3f} s / copy {r['copy_log']:.3f} s = {r['log'] / r['copy_log']:.2f}x, "
                f"download {r['download']:.3f} s / copy {r['copy_download']:.3f} s = "
                f"{r['download'] / r['copy_download']:.2f}x, re-log {r['relog']:.3f} s; CPU log "
                f"{r['log_cpu'] / r['copy_log_cpu']:.2f}x, download {r['download_cpu'] / r['copy_download_cpu']:.2f}x"
            )
        met = ratio("log", "copy_log") <= 2 and ratio("download", "copy_download") <= 2 and med["relog"] <= 1.0
        print("targets met" if met else "TARGETS MISSED")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
