"""Faults under the journal: a full disk while logging, damaged bytes in the middle, a full store.

The full disk is real: a small tmpfs when the tests run as root and may mount one, and always a
child process whose file size limit (RLIMIT_FSIZE, SIGXFSZ ignored) refuses the journal's writes,
which needs no privileges. "Space returns" is the ballast file removed, or the limit raised.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from branchline.sdk.journal import FRAME, MAGIC
from branchline.sdk.journal_read import read_journal
from branchline.store import open_store
from branchline.vocab import RecordKind
from tests.backends import ServerProcess
from tests.conftest import QUIET, run_python

# Logs `steps` rows (a float row, or an int row every third step, so both fast paths are used),
# fills the disk under the run directory after `full_at`, frees it after `free_at` (unless -1),
# and reports what log() acknowledged.
LOGGER = """
import json, os, resource, signal, sys, time
import branchline

how, root, store_url = sys.argv[1], sys.argv[2], sys.argv[3]
steps, full_at, free_at, hold_limit, finish_timeout = (float(a) for a in sys.argv[4:9])
settings = {"quiet": True, "x_disable_stats": True, "console": "off", "store_url": store_url}
if finish_timeout:
    settings["finish_timeout"] = finish_timeout
run = branchline.init(project="full", id="f1", dir=root, settings=settings)
journal = run._res.journal
if hold_limit:
    journal.hold_limit = int(hold_limit)
ballast = os.path.join(root, "ballast")


def fill():
    if how == "rlimit":
        # The writer process was started by init(): only this process gets the limit.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        limit = os.path.getsize(journal.path) + 20_000
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        return
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o644)
    for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
        try:
            while True:
                os.write(fd, b"\\0" * chunk)
        except OSError:
            pass
    os.close(fd)


def free():
    if how == "rlimit":
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    else:
        os.remove(ballast)


acked, errors = [], 0
for i in range(int(steps)):
    if i == full_at:
        fill()
    try:
        run.log({"f": float(i)} if i % 3 else {"i": i})
    except Exception as exc:
        errors += 1
        continue
    acked.append(i)
    if i == free_at:
        free()
        time.sleep(0.5)  # the next log() retries the held records
began = time.monotonic()
run.finish()
took = time.monotonic() - began
print(json.dumps({"acked": acked, "errors": errors, "took": took}), flush=True)
"""


def _can_mount_tmpfs(where: Path) -> bool:
    if os.geteuid() != 0:
        return False
    where.mkdir(parents=True, exist_ok=True)
    probe = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True)
    if probe.returncode != 0:
        return False
    subprocess.run(["umount", str(where)], check=True)
    return True


@contextlib.contextmanager
def _small_disk(kind: str, tmp_path: Path, size: str = "2m") -> Iterator[Path]:
    """A directory on a small tmpfs, or a plain one (the child limits file sizes)."""
    root = tmp_path / "smalldisk"
    root.mkdir()
    if kind == "rlimit":
        yield root
        return
    if not _can_mount_tmpfs(tmp_path / "probe"):
        pytest.skip("mounting a tmpfs needs root (the RLIMIT_FSIZE variant runs everywhere)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(root)], check=True)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def _log_on_small_disk(kind: str, tmp_path: Path, *args: float) -> tuple[dict[str, Any], str, str]:
    store_url = f"sqlite:///{tmp_path / 'store' / 'store.db'}"
    (tmp_path / "store").mkdir()
    with _small_disk(kind, tmp_path) as root:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
        env["BRANCHLINE_CONFIG_DIR"] = str(tmp_path / ".config")
        child = subprocess.run(
            [sys.executable, "-c", LOGGER, kind, str(root), store_url, *(str(a) for a in args)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert child.returncode == 0, child.stdout + child.stderr
        report = json.loads(child.stdout.strip().splitlines()[-1])
        left = sorted(str(p) for p in root.glob("branchline/runs/*/journal.blj*"))
    report["journals_left"] = left
    return report, child.stderr, store_url


def _stored_steps(store_url: str, project: str = "full", run_id: str = "f1") -> tuple[list[int], str]:
    """Every step stored for the rows `LOGGER` logs (each value equals its step), and the run's state."""
    with open_store(store_url) as store:
        view = store.require_run(getpass.getuser(), project, run_id)
        steps: list[int] = []
        for key in ("f", "i"):
            got, values = store.read_series(view.incarnation_id, key)
            assert (got == values).all()
            steps.extend(got.tolist())
        return sorted(steps), view.state


@pytest.mark.parametrize("kind", ["rlimit", "tmpfs"])
def test_a_full_disk_under_the_run_loses_no_acknowledged_step(kind: str, tmp_path: Path) -> None:
    report, stderr, store_url = _log_on_small_disk(kind, tmp_path, 30_000, 2_000, 20_000, 0, 0)
    stored, state = _stored_steps(store_url)
    assert report["errors"] == 0, "log() raised into the training loop"
    assert len(stored) == len(set(stored)), "a step was stored twice"
    missing = set(report["acked"]) - set(stored)
    assert not missing, f"{len(missing)} acknowledged steps lost"
    assert len(report["acked"]) == 30_000 and state == "finished"
    assert report["took"] < 30
    # Said once, clearly: which directory, what happens, what to do; then that nothing was lost.
    warnings = [line for line in stderr.splitlines() if "WARNING" in line and "journal" in line]
    assert len(warnings) == 1, stderr
    # Files written beside the journal (metadata, in the background) may fail on the full disk too:
    # that is their own warning, once per part.
    others = [line for line in stderr.splitlines() if "WARNING" in line and "journal" not in line]
    assert all("the run continues without it" in line for line in others), stderr
    assert "cannot write the run's journal in" in warnings[0] and "free space" in warnings[0]
    assert "log() does not raise" in warnings[0]
    assert "writable again" in stderr and "none were lost" in stderr
    assert report["journals_left"] == []  # every record is stored: the journal is done with


def test_a_disk_that_stays_full_ends_the_run_in_bounded_time_with_an_exact_count(tmp_path: Path) -> None:
    # The memory for held records fills too (records are dropped), and the disk never frees.
    report, stderr, store_url = _log_on_small_disk("rlimit", tmp_path, 8_000, 2_000, -1, 20_000, 1.0)
    stored, _ = _stored_steps(store_url)
    assert report["errors"] == 0 and report["took"] < 15
    acked = set(report["acked"])
    assert set(stored) <= acked and len(stored) == len(set(stored))
    # Everything that reached the disk is stored; what did not is counted exactly.
    lost = re.search(r"(\d+) logged steps \((\d+) records\) in all are lost", stderr)
    assert lost, stderr
    assert int(lost.group(1)) == len(acked) - len(stored)
    assert "memory held for the journal" in stderr and "are dropped" in stderr
    journal_warnings = [line for line in stderr.splitlines() if "WARNING" in line and "journal" in line]
    assert len(journal_warnings) == 3, stderr  # the refusal, the memory full, the loss at the end


# -- damage in the middle of a journal ------------------------------------------------------------


def _offline_journal(tmp_path: Path, steps: int) -> Path:
    result = run_python(
        f"""
        import os, branchline
        run = branchline.init(project="dmg", id="d1", mode="offline", settings={QUIET!r})
        for i in range({steps}):
            run.log({{"f": float(i)}} if i % 3 else {{"i": i}})
        run.finish()
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    (journal,) = tmp_path.glob("branchline/runs/*/journal.blj")
    return journal


def _frames(journal: Path) -> list[tuple[int, int, int]]:
    """(offset, end, step) of each frame of an intact journal; step -1 for records that are not rows."""
    data = journal.read_bytes()
    out = []
    pos = len(MAGIC)
    for record in read_journal(journal).records:
        end = pos + 8 + FRAME.unpack_from(data, pos)[0]
        row = int(record[1]) in (RecordKind.HISTORY, RecordKind.FLOAT_ROW)
        out.append((pos, end, int(record[2]) if row else -1))
        pos = end
    assert pos == len(data)
    return out


def _sync(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    env["BRANCHLINE_CONFIG_DIR"] = str(tmp_path / ".config")
    return subprocess.run(
        [sys.executable, "-m", "branchline", "sync"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120
    )


def _dmg_steps(tmp_path: Path) -> tuple[list[int], str]:
    return _stored_steps(f"sqlite:///{tmp_path / 'branchline' / 'store.db'}", "dmg", "d1")


@pytest.mark.parametrize("damage", ["flipped bit", "overwritten", "torn frame inside"])
def test_damage_mid_journal_loses_only_the_damaged_records(damage: str, tmp_path: Path) -> None:
    journal = _offline_journal(tmp_path, 3_000)
    frames = _frames(journal)
    data = bytearray(journal.read_bytes())
    history = [f for f in frames if f[2] >= 0]
    assert len(history) == 3_000
    middle = history[1_500]
    if damage == "flipped bit":
        at, size = middle[0] + 13, 1
        data[at] ^= 0x10
    elif damage == "overwritten":
        at, size = middle[0] + 5, 400
        data[at : at + size] = b"\xab" * size
    else:  # what an unchecked short write left behind: part of a frame, then every later record
        at, size = middle[0], 21
        data[at:at] = bytes(data[history[10][0] : history[10][0] + size])
    journal.write_bytes(bytes(data))
    if damage == "torn frame inside":
        lost = set()
    else:
        lost = {step for start, end, step in frames if step >= 0 and start < at + size and end > at}
    assert 1 <= len(lost) <= 12 or damage == "torn frame inside"

    synced = _sync(tmp_path)
    assert synced.returncode == 0, synced.stderr
    stored, state = _dmg_steps(tmp_path)
    assert set(stored) == set(range(3_000)) - lost, "an intact record was not stored"
    assert state == "finished"  # the exit record after the damage is read too
    message = synced.stderr
    assert "damaged bytes at offset" in message and "torn or corrupt tail" not in message, message
    skipped = re.search(r"skipped (\d+) damaged bytes at offset (\d+)", message)
    assert skipped, message
    offset = int(skipped.group(2))
    assert offset <= at < offset + int(skipped.group(1))
    if lost:
        assert "lost" in message and "no record lost" not in message
    else:
        assert "no record lost" in message
    # The damaged journal is kept for a look, never synced twice.
    assert list(journal.parent.glob("journal.blj.damaged")) and not journal.exists()
    assert "Nothing to sync" in _sync(tmp_path).stdout


def test_a_journal_whose_last_records_cannot_be_read_is_kept(tmp_path: Path) -> None:
    # The exit record is damaged on the disk as the run closes its journal: finish must not call
    # it stored, nor delete the journal (it used to, after its timeout).
    code = f"""
        import os, branchline
        run = branchline.init(project="dmg", id="d1", settings={{**{QUIET!r}, "finish_timeout": 1}})
        for i in range(600):
            run.log({{"f": float(i)}} if i % 3 else {{"i": i}})
        journal = run._res.journal
        close = journal.close

        def damage_then_close(*args, **kwargs):
            fd = os.open(journal.path, os.O_WRONLY)
            os.pwrite(fd, b"\\xee" * 12, os.path.getsize(journal.path) - 12)
            os.close(fd)
            close(*args, **kwargs)

        journal.close = damage_then_close
        run.finish()
        print("journal kept:", os.path.exists(journal.path), flush=True)
    """
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "journal kept: True" in result.stdout, result.stdout + result.stderr
    assert "1 records are not stored yet" in result.stderr, result.stderr  # said even though quiet
    stored, _ = _dmg_steps(tmp_path)
    assert stored == list(range(600))


def test_the_writer_of_a_live_run_reads_past_damage_and_says_where(tmp_path: Path) -> None:
    # The writer is frozen while rows are logged; a frame in the middle of what it has not read yet
    # is overwritten; thawed, it stores every intact row and the run finishes.
    code = f"""
        import os, signal, branchline
        run = branchline.init(project="dmg", id="d1", settings={QUIET!r})
        run.log({{"i": 0}})
        writer = run._res.writer.proc
        os.kill(writer.pid, signal.SIGSTOP)
        journal = run._res.journal
        start = os.path.getsize(journal.path)
        for i in range(1, 600):
            run.log({{"f": float(i)}} if i % 3 else {{"i": i}})
        middle = (start + os.path.getsize(journal.path)) // 2
        fd = os.open(journal.path, os.O_WRONLY)
        os.pwrite(fd, b"\\xee" * 30, middle)
        os.close(fd)
        print("damaged at", middle, flush=True)
        os.kill(writer.pid, signal.SIGCONT)
        run.finish()
    """
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    at = int(result.stdout.split("damaged at")[1].split()[0])
    reported = re.search(
        r"the journal .* is damaged: skipped (\d+) damaged bytes at offset (\d+) \(record", result.stderr
    )
    assert reported, result.stderr
    offset, size = int(reported.group(2)), int(reported.group(1))
    assert offset <= at < offset + size
    stored, state = _dmg_steps(tmp_path)
    assert state == "finished"
    lost = set(range(600)) - set(stored)
    assert 1 <= len(lost) <= 3 and max(lost) - min(lost) < 3, lost  # only the rows in the damaged bytes


# -- finish and sync say what is not stored ---------------------------------------------------------


def test_quiet_finish_still_says_that_records_are_unsent(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'server' / 'store.db'}"
    (tmp_path / "server").mkdir()
    with open_store(store_url) as store:
        store.create_user("alice")
        key = store.create_api_key("alice")[1]
    server = ServerProcess(store_url, tmp_path / "server")
    server.start()
    try:
        code = f"""
            import time, branchline
            run = branchline.init(project="late", id="q1", settings={QUIET!r})
            for step in range(100):
                run.log({{"x": float(step)}})
            print("logged", flush=True)
            time.sleep(1.5)  # the server is killed now
            for step in range(100, 300):
                run.log({{"x": float(step)}})
            run.finish()
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
        env.update(
            BRANCHLINE_BASE_URL=server.base_url,
            BRANCHLINE_API_KEY=key,
            BRANCHLINE_CONFIG_DIR=str(tmp_path / ".config"),
            BRANCHLINE_FINISH_TIMEOUT="2",
        )
        child = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        while (line := child.stdout.readline()) and line.strip() != "logged":
            pass
        time.sleep(0.3)
        server.kill()
        _, err = child.communicate(timeout=90)
    finally:
        with contextlib.suppress(Exception):
            server.stop()
    assert child.returncode == 0, err
    unsent = [line for line in err.splitlines() if "records are not stored yet" in line]
    assert len(unsent) == 1, err
    assert "branchline sync" in unsent[0]


SYNC_WITH_LIMIT = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
if limit:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
from branchline.cli.main import cli
cli(["sync"])
"""


@pytest.mark.parametrize("kind", ["rlimit", "tmpfs"])
def test_a_full_disk_during_sync_is_said_plainly_and_keeps_the_journal(kind: str, tmp_path: Path) -> None:
    journal = _offline_journal(tmp_path, 60_000)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    env["BRANCHLINE_CONFIG_DIR"] = str(tmp_path / ".config")
    with _small_disk(kind, tmp_path, size="512k") as disk:
        # The store may grow to what an empty one needs, not to what 60,000 rows need.
        env["BRANCHLINE_STORE"] = store_url = f"sqlite:///{disk / 'store.db'}"
        limit = 300_000 if kind == "rlimit" else 0
        limited = subprocess.run(
            [sys.executable, "-c", SYNC_WITH_LIMIT, str(limit)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert limited.returncode == 1, limited.stdout + limited.stderr
        said = limited.stdout + limited.stderr
        assert "free space" in said and "journal is kept" in said, said
        if kind == "tmpfs":
            assert "is full" in said, said
        for raw in ("INSERT", "UPDATE", "SELECT", "[parameters", "[SQL", "Traceback"):
            assert raw not in said, said
        assert journal.exists()
        if kind == "tmpfs":
            return  # the small disk cannot hold it: freeing space is the rlimit variant's part
        # Space returns: everything is stored.
        del env["BRANCHLINE_STORE"]
        synced = subprocess.run(
            [sys.executable, "-c", SYNC_WITH_LIMIT, "0"], cwd=tmp_path, capture_output=True, text=True, env=env
        )
        assert synced.returncode == 0, synced.stderr
        assert store_url
    stored, state = _dmg_steps(tmp_path)
    assert stored == list(range(60_000)) and state == "finished"
