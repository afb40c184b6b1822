"""A file added to an artifact is captured at add time: later edits never cost a version.

`policy="mutable"` (the default) copies each file into a staging directory when it is added, so
a training loop may overwrite `model.pt` right after `log_artifact` and every version keeps the
bytes it had. `policy="immutable"` skips the copy: a later change fails that version only, naming
the file. The `gate` holds every background upload until the loop is done, so the overwrites
always land before the upload reads anything (the worst case, made certain).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import branchline
from branchline.artifacts import ArtifactIntegrityError
from branchline.artifacts import artifact as artifact_module
from branchline.artifacts.staging import staging_root
from branchline.sdk.run import Run

from .backends import Backend
from .conftest import QUIET

EPOCHS = 5


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BRANCHLINE_CACHE_DIR", str(tmp_path / ".cache"))
    return tmp_path / ".cache"


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Hold every background upload until the test sets the event (set at teardown in any case)."""
    event = threading.Event()
    original = artifact_module.upload_missing

    def held(*args: Any, **kwargs: Any) -> Any:
        assert event.wait(60), "the test never opened the gate"
        return original(*args, **kwargs)

    monkeypatch.setattr(artifact_module, "upload_missing", held)
    yield event
    event.set()


def start(tmp_path: Path) -> Run:
    return branchline.init(project="p", dir=str(tmp_path), settings=dict(QUIET))


def epoch_bytes(epoch: int) -> bytes:
    """Different content and size each epoch (a header plus a body of varying length)."""
    return f"weights of epoch {epoch}\n".encode() + bytes([epoch]) * (100_000 + 7919 * epoch)


def staged_files() -> list[Path]:
    root = staging_root()
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def download(backend: Backend, entity: str, name: str, version: int, into: Path) -> Path:
    logged = backend.reader.artifact(f"{entity}/p/{name}:v{version}")
    return Path(logged.download(str(into / f"{name}-v{version}")))


def test_overwriting_model_pt_every_epoch_keeps_every_version(
    tmp_path: Path, backend: Backend, gate: threading.Event
) -> None:
    model = tmp_path / "model.pt"
    run = start(tmp_path)
    logged = []
    for epoch in range(EPOCHS):
        model.write_bytes(epoch_bytes(epoch))  # torch.save overwrites in place, like this
        art = branchline.Artifact("model", "model", metadata={"epoch": epoch})
        art.add_file(model)
        logged.append(run.log_artifact(art))
    model.write_bytes(b"after the loop")
    gate.set()
    assert [a.wait().version for a in logged] == [f"v{i}" for i in range(EPOCHS)]
    run.finish()
    for epoch in range(EPOCHS):
        out = download(backend, run.entity, "model", epoch, tmp_path / "out")
        assert (out / "model.pt").read_bytes() == epoch_bytes(epoch), f"v{epoch}"
    assert staged_files() == []  # every copy is deleted once its version is committed


def test_add_dir_captures_every_file(tmp_path: Path, backend: Backend, gate: threading.Event) -> None:
    ckpt = tmp_path / "ckpt"
    (ckpt / "sub").mkdir(parents=True)
    expected: list[dict[str, bytes]] = []
    run = start(tmp_path)
    logged = []
    for epoch in range(EPOCHS):
        (ckpt / "model.pt").write_bytes(epoch_bytes(epoch))
        (ckpt / "sub" / "optimizer.pt").write_bytes(epoch_bytes(epoch)[::-1])
        (ckpt / "config.json").write_text('{"lr": 0.1}')  # the same every epoch
        (ckpt / "empty.txt").write_bytes(b"")
        state = {
            "model.pt": epoch_bytes(epoch),
            "sub/optimizer.pt": epoch_bytes(epoch)[::-1],
            "config.json": b'{"lr": 0.1}',
            "empty.txt": b"",
        }
        if epoch % 2:
            (ckpt / f"extra-{epoch}.bin").write_bytes(bytes([epoch]) * 10)
            state[f"extra-{epoch}.bin"] = bytes([epoch]) * 10
        expected.append(state)
        art = branchline.Artifact("ckpt", "model")
        art.add_dir(ckpt)
        logged.append(run.log_artifact(art))
        for extra in ckpt.glob("extra-*.bin"):
            extra.unlink()  # gone before the upload: the version still has it
    gate.set()
    assert [a.wait().version for a in logged] == [f"v{i}" for i in range(EPOCHS)]
    run.finish()
    for epoch, state in enumerate(expected):
        out = download(backend, run.entity, "ckpt", epoch, tmp_path / "out")
        found = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert found == state, f"v{epoch}"
    assert staged_files() == []


def test_immutable_change_fails_only_that_version_naming_the_file(
    tmp_path: Path, backend: Backend, gate: threading.Event, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model.pt"
    promised = tmp_path / "promised.pt"
    run = start(tmp_path)
    model.write_bytes(epoch_bytes(0))
    first = branchline.Artifact("model", "model")
    first.add_file(model)
    run.log_artifact(first)

    # Content no earlier test stored (a server keeps its blobs between tests): it must be uploaded.
    promised.write_bytes(os.urandom(50_000))
    broken = branchline.Artifact("model", "model")
    broken.add_file(promised, name="model.pt", policy="immutable")
    assert staged_files() != []  # the mutable one waits in staging; the immutable one is not copied
    assert len(staged_files()) == 1
    run.log_artifact(broken)
    promised.write_bytes(b"the promise was broken")  # after log_artifact, before the upload

    model.write_bytes(epoch_bytes(2))
    third = branchline.Artifact("model", "model")
    third.add_file(model)
    run.log_artifact(third)
    gate.set()
    assert first.wait().version == "v0"
    assert third.wait().version == "v1"  # the run and the other versions go on
    run.finish()
    err = capsys.readouterr().err
    # Reported once, at finish (nobody called wait() on it), naming the file.
    assert err.count("was not logged") == 1, err
    assert "promised.pt changed after it was added" in err
    with pytest.raises(ArtifactIntegrityError, match=r"promised\.pt changed after it was added"):
        broken.wait()
    assert (download(backend, run.entity, "model", 0, tmp_path / "out") / "model.pt").read_bytes() == epoch_bytes(0)
    assert (download(backend, run.entity, "model", 1, tmp_path / "out") / "model.pt").read_bytes() == epoch_bytes(2)


def test_immutable_add_dir_change_fails_naming_the_file(tmp_path: Path, gate: threading.Event) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.bin").write_bytes(os.urandom(1000))
    (data / "b.bin").write_bytes(os.urandom(1000))
    run = start(tmp_path)
    art = branchline.Artifact("ds", "dataset")
    art.add_dir(data, policy="immutable")
    assert staged_files() == []
    run.log_artifact(art)
    (data / "b.bin").write_bytes(b"B" * 1000)
    gate.set()
    with pytest.raises(ArtifactIntegrityError, match=r"b\.bin changed after it was added"):
        art.wait()
    run.finish()


def test_invalid_policy_is_refused_clearly(tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(b"w")
    art = branchline.Artifact("m", "model")
    with pytest.raises(ValueError, match=r"policy='copy' is not valid.*'mutable'.*'immutable'"):
        art.add_file(tmp_path / "w.bin", policy="copy")
    with pytest.raises(ValueError, match=r"policy='Mutable' is not valid"):
        art.add_dir(tmp_path, policy="Mutable")
    assert len(art.manifest) == 0 and staged_files() == []


def test_a_dropped_draft_and_a_replaced_file_leave_no_copies(tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(b"one")
    art = branchline.Artifact("m", "model")
    art.add_file(tmp_path / "w.bin")
    (tmp_path / "w.bin").write_bytes(b"two")
    art.add_file(tmp_path / "w.bin", overwrite=True)
    assert [p.read_bytes() for p in staged_files()] == [b"two"]  # the replaced copy is gone
    del art
    assert staged_files() == []


def test_relogging_unchanged_files_copies_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(5):
        (data / f"f{i}.bin").write_bytes(bytes([i]) * 5000)
    run = start(tmp_path)
    first = branchline.Artifact("ds", "dataset")
    first.add_dir(data)
    run.log_artifact(first).wait()
    again = branchline.Artifact("ds", "dataset")
    again.add_dir(data)
    assert staged_files() == []  # stored already, and unchanged since it was hashed
    (data / "f0.bin").write_bytes(b"new")  # changed after the add: the version still gets the old bytes
    assert run.log_artifact(again).wait().version == "v0"
    run.finish()


def test_a_killed_process_leaves_staging_that_the_next_one_removes(tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(b"w" * 1000)
    env = {**os.environ, "BRANCHLINE_CACHE_DIR": str(tmp_path / ".cache")}
    killed = textwrap.dedent(
        f"""
        import os, signal, branchline
        art = branchline.Artifact("m", "model")
        art.add_file({str(tmp_path / "w.bin")!r})
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", killed], env=env, cwd=tmp_path, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert len(staged_files()) == 1
    logs = textwrap.dedent(
        f"""
        import branchline
        run = branchline.init(project="p", dir={str(tmp_path)!r}, settings={dict(QUIET)!r})
        art = branchline.Artifact("m", "model")
        art.add_file({str(tmp_path / "w.bin")!r})
        run.log_artifact(art).wait()
        run.finish()
        """
    )
    proc = subprocess.run([sys.executable, "-c", logs], env=env, cwd=tmp_path, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert staged_files() == []
    assert [p.name for p in staging_root().iterdir()] == []


def test_offline_loop_stages_each_epoch_and_keeps_no_copies(tmp_path: Path) -> None:
    from branchline.sdk.artifacts import sync_offline_artifacts

    from .conftest import store_at

    model = tmp_path / "model.pt"
    run = branchline.init(project="p", dir=str(tmp_path), mode="offline", settings=dict(QUIET))
    for epoch in range(EPOCHS):
        model.write_bytes(epoch_bytes(epoch))
        art = branchline.Artifact("model", "model")
        art.add_file(model)
        run.log_artifact(art)
        assert staged_files() == []  # the run directory holds the bytes now
    run_dir, entity, incarnation = run._res.run_dir, run.entity, run.incarnation_id
    run.finish()
    with store_at(tmp_path) as store:
        rows = sync_offline_artifacts(run_dir, store, entity=entity, project="p", incarnation_id=incarnation)
        assert [r.version for r in rows] == [f"v{i}" for i in range(EPOCHS)]


def test_an_unusable_staging_directory_says_how_to_get_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "w.bin").write_bytes(b"w")
    (tmp_path / "not-a-dir").write_bytes(b"")
    monkeypatch.setenv("BRANCHLINE_ARTIFACT_STAGING_DIR", str(tmp_path / "not-a-dir" / "staging"))
    art = branchline.Artifact("m", "model")
    with pytest.raises(OSError, match=r"BRANCHLINE_ARTIFACT_STAGING_DIR.*policy='immutable'"):
        art.add_file(tmp_path / "w.bin")
    art.add_file(tmp_path / "w.bin", policy="immutable")  # no copy, so no staging directory needed
    assert len(art.manifest) == 1


def test_branchline_sync_removes_a_killed_process_staging(tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(b"w" * 1000)
    env = {**os.environ, "BRANCHLINE_CACHE_DIR": str(tmp_path / ".cache")}
    killed = textwrap.dedent(
        f"""
        import os, signal, branchline
        art = branchline.Artifact("m", "model")
        art.add_file({str(tmp_path / "w.bin")!r})
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", killed], env=env, cwd=tmp_path, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert len(staged_files()) == 1
    proc = subprocess.run(
        [sys.executable, "-m", "branchline", "sync"], env=env, cwd=tmp_path, capture_output=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert staged_files() == [] and list(staging_root().iterdir()) == []
