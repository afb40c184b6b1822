"""`log_artifact` commits in the background: `wait()`, implicit waits, call order, `finish()`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import branchline
from branchline.artifacts import ArtifactIntegrityError, ArtifactNotLoggedError, public
from branchline.artifacts import artifact as artifact_module
from branchline.artifacts.backend import CommitRequest, EmbeddedBackend
from branchline.artifacts.errors import ArtifactFinalizedError
from branchline.errors import UsageError
from branchline.sdk.run import Run

from .conftest import QUIET, run_python, store_at


@pytest.fixture(autouse=True)
def digest_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRANCHLINE_CACHE_DIR", str(tmp_path / ".cache"))


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Holds every background upload and commit until the test sets the event (set at teardown
    in any case): nothing the test does after `log_artifact` races the committer."""
    event = threading.Event()
    original = EmbeddedBackend.commit
    original_upload = artifact_module.upload_missing

    def held(self: EmbeddedBackend, request: CommitRequest) -> Any:
        assert event.wait(30), "the test never opened the gate"
        return original(self, request)

    def held_upload(*args: Any, **kwargs: Any) -> Any:
        assert event.wait(30), "the test never opened the gate"
        return original_upload(*args, **kwargs)

    monkeypatch.setattr(EmbeddedBackend, "commit", held)
    monkeypatch.setattr(artifact_module, "upload_missing", held_upload)
    yield event
    event.set()


def start(tmp_path: Path) -> Run:
    return branchline.init(project="p", dir=str(tmp_path), settings=dict(QUIET))


def text_artifact(name: str, content: str, type: str = "model") -> branchline.Artifact:
    art = branchline.Artifact(name, type)
    with art.new_file("w.txt") as f:
        f.write(content)
    return art


def versions(tmp_path: Path, entity: str, name: str) -> list[str]:
    with store_at(tmp_path) as s:
        return [v.version for v in public.artifact_versions(s, None, f"{entity}/p/{name}")]


def test_log_returns_before_the_commit_and_wait_blocks_until_it(tmp_path: Path, gate: threading.Event) -> None:
    extra = tmp_path / "extra.txt"
    extra.write_text("late")
    run = start(tmp_path)
    art = text_artifact("m", "weights")
    assert run.log_artifact(art) is art
    assert art.state == "PENDING" and art.is_draft()
    assert "m" in repr(art)  # repr never waits
    assert versions(tmp_path, run.entity, "m") == []  # nothing is visible before the commit
    with pytest.raises(TimeoutError, match="still being logged"):
        art.wait(timeout=0.05)
    with pytest.raises(ArtifactFinalizedError):
        art.add_file(extra)  # frozen at log time, not at commit
    gate.set()
    assert art.wait() is art
    assert (art.state, art.version, art.name) == ("COMMITTED", "v0", "m:v0")
    assert versions(tmp_path, run.entity, "m") == ["v0"]
    run.finish()


def test_properties_wait_for_the_commit_on_their_own(tmp_path: Path, gate: threading.Event) -> None:
    run = start(tmp_path)
    art = run.log_artifact(text_artifact("m", "weights"), aliases=["best"])
    threading.Timer(0.1, gate.set).start()
    assert art.version == "v0"  # blocks until the background commit is done, as in wandb
    assert sorted(art.aliases) == ["best", "latest"]
    run.finish()


def test_wait_on_a_draft_that_was_never_logged_is_an_error() -> None:
    with pytest.raises(ArtifactNotLoggedError, match="before wait"):
        branchline.Artifact("m", "model").wait()


def test_finish_waits_for_pending_commits(tmp_path: Path, gate: threading.Event) -> None:
    run = start(tmp_path)
    arts = [run.log_artifact(text_artifact(f"m{i}", f"weights {i}")) for i in range(3)]
    assert all(a.state == "PENDING" for a in arts)
    threading.Timer(0.2, gate.set).start()
    run.finish()
    assert [a.state for a in arts] == ["COMMITTED"] * 3
    for i in range(3):
        assert versions(tmp_path, run.entity, f"m{i}") == ["v0"]


def test_commits_keep_the_call_order(tmp_path: Path, gate: threading.Event) -> None:
    run = start(tmp_path)
    first = run.log_artifact(text_artifact("m", "A"))
    second = run.log_artifact(text_artifact("m", "B"), aliases=["best"])
    again = run.log_artifact(text_artifact("m", "A"))  # same content as the first: reuses v0
    gate.set()
    assert (first.version, second.version, again.version) == ("v0", "v1", "v0")
    # use_artifact by name waits for this run's earlier commits, so it sees all three.
    assert run.use_artifact("m:latest").version == "v0"
    assert run.use_artifact("m:best").version == "v1"
    run.finish()


def test_a_failed_commit_raises_on_wait_and_is_reported_at_finish(
    tmp_path: Path, gate: threading.Event, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"epoch 1")
    run = start(tmp_path)
    art = branchline.Artifact("m", "model")
    art.add_file(weights, policy="immutable")  # no copy: a later change fails the version
    run.log_artifact(art)
    weights.write_bytes(b"epoch 2, changed while queued")  # after the call-site check passed
    ignored = run.log_artifact(text_artifact("m", "x"), aliases=["best"])
    other_type = text_artifact("m", "y", type="dataset")  # same name, another type: refused by the commit
    unwaited = run.log_artifact(other_type)
    gate.set()
    with pytest.raises(ArtifactIntegrityError, match=r"w\.bin changed after it was added"):
        art.wait()
    with pytest.raises(ArtifactIntegrityError):
        _ = art.version  # the same error, from any property that needs the version
    assert ignored.wait().version == "v0"  # a failure does not block the queue behind it
    run.finish()
    err = capsys.readouterr().err
    assert "artifact 'm' was not logged" in err and "has type 'model'" in err  # the unwaited one
    assert "w.bin" not in err  # already raised through wait()
    assert unwaited.state == "PENDING"
    with pytest.raises(UsageError, match="has type 'model'"):
        unwaited.wait()
    assert versions(tmp_path, run.entity, "m") == ["v0"]


def test_a_file_changed_before_log_is_refused_at_the_call(tmp_path: Path) -> None:
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"epoch 1")
    art = branchline.Artifact("m", "model")
    art.add_file(weights, policy="immutable")  # no copy: a later change is refused at the call
    weights.write_bytes(b"epoch 2")
    run = start(tmp_path)
    with pytest.raises(ArtifactIntegrityError, match="changed after it was added"):
        run.log_artifact(art)
    art.add_file(weights, overwrite=True)  # still a draft: fix it and log again
    assert run.log_artifact(art).wait().version == "v0"
    weights.touch()  # a new mtime with the same content is fine
    art2 = branchline.Artifact("m", "model")
    art2.add_file(weights)
    assert run.log_artifact(art2).wait().version == "v0"
    run.finish()


def test_commits_queued_at_interpreter_exit_are_completed(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    for i in range(20):
        (tmp_path / "data" / f"f{i}.bin").write_bytes(bytes([i]) * 50_000)
    result = run_python(
        f"""
        import branchline
        run = branchline.init(project="p", dir=".", settings={QUIET!r})
        art = branchline.Artifact("ds", "dataset")
        art.add_dir("data")
        run.log_artifact(art)
        print(run.entity)
        # no wait(), no finish(): the exit hooks must still commit the version
        """,
        tmp_path,
        env={"BRANCHLINE_CACHE_DIR": str(tmp_path / ".cache")},
    )
    assert result.returncode == 0, result.stderr
    entity = result.stdout.strip().splitlines()[-1]
    with store_at(tmp_path) as s:
        found = public.artifact_versions(s, "dataset", f"{entity}/p/ds")
        assert [v.version for v in found] == ["v0"]
        assert found[0].file_count == 20
        found[0].verify()
