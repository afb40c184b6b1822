"""The public read API: opening a store, run paths, public Run fields, edits, stop, projects, lineage."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import branchline
from branchline.api import Api, PathError, Run
from branchline.api.paths import parse_project_path, parse_run_path
from branchline.errors import RunNotFoundError, UsageError
from branchline.store.store import Store, open_store
from tests.backends import Backend
from tests.store_factory import add_run

# Tests taking `store`/`api` run on the embedded SQLite store, on PostgreSQL, and through a real
# server (tests/backends.py): `store` is where fixtures build runs, `api` reads them back.
pytestmark = pytest.mark.backends("embedded", "postgresql", "server")


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    s = backend.open_store()
    yield s
    s.close()


@pytest.fixture
def api(backend: Backend, store: Store) -> Iterator[Api]:
    with backend.api(entity="e", project="p") as api:
        yield api


# -- paths -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("ent/proj/abc123", ("ent", "proj", "abc123")),
        ("ent/proj/runs/abc123", ("ent", "proj", "abc123")),
        ("/ent/proj/runs/abc123/overview", ("ent", "proj", "abc123")),
        ("https://host:8080/ent/proj/runs/abc123?nw=1", ("ent", "proj", "abc123")),
        ("ent/proj:abc123", ("ent", "proj", "abc123")),
        ("proj/abc123", ("dflt-e", "proj", "abc123")),
        ("proj:abc123", ("dflt-e", "proj", "abc123")),
        ("abc123", ("dflt-e", "dflt-p", "abc123")),
        (["ent", "proj", "abc123"], ("ent", "proj", "abc123")),
    ],
)
def test_run_path_forms(path: Any, expected: tuple[str, str, str]) -> None:
    assert parse_run_path(path, entity="dflt-e", project="dflt-p") == expected


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("abc123", "names no project"),
        ("", "empty"),
        ("a//b", "empty part"),
        ("a/b/c/d/e", "not a run path"),
    ],
)
def test_bad_run_paths_are_value_errors(path: str, message: str) -> None:
    with pytest.raises(PathError, match=message) as info:
        parse_run_path(path, entity="e", project=None)
    assert isinstance(info.value, ValueError) and isinstance(info.value, UsageError)


def test_project_path_forms() -> None:
    assert parse_project_path("e/p") == ("e", "p")
    assert parse_project_path("p", entity="me") == ("me", "p")
    assert parse_project_path(None, entity="me", project="dp") == ("me", "dp")
    with pytest.raises(PathError, match="No project given"):
        parse_project_path(None, entity="me")
    with pytest.raises(PathError, match="not a project path"):
        parse_project_path("a/b/c")


# -- opening the store -------------------------------------------------------------------------------


@pytest.mark.backends("embedded", "server")
def test_api_reads_a_run_logged_by_the_sdk_in_the_current_directory(backend: Backend, quiet: dict[str, Any]) -> None:
    run = branchline.init(project="sdk", config={"lr": 0.1}, tags=["t1"], notes="hello", settings=quiet)
    for step in range(5):
        run.log({"loss": 1.0 / (step + 1), "acc": {"top1": step * 0.1}})
    run.summary["best"] = 0.5
    run.finish()
    api = branchline.Api()  # ./branchline/store.db of the working directory, or the server of the environment
    found = api.run(f"sdk/{run.id}")
    assert found.id == run.id
    assert found.entity == run.entity and found.project == "sdk"
    assert found.path == [run.entity, "sdk", run.id]
    assert found.state == "finished"
    assert found.config == {"lr": 0.1}
    assert found.tags == ["t1"] and found.notes == "hello"
    assert found.summary["best"] == 0.5 and found.summary["loss"] == pytest.approx(0.2)
    assert found.last_step == 4 == found.lastHistoryStep
    assert set(found.history_keys["keys"]) >= {"loss", "acc.top1", "_runtime", "_timestamp"}
    assert list(found.metric("loss")[0]) == [0, 1, 2, 3, 4]
    assert [r.id for r in api.runs("sdk")] == [run.id]


def test_api_without_a_store_says_where_it_looked_and_creates_nothing(tmp_path: Path) -> None:
    api = Api()
    with pytest.raises(UsageError, match="No branchline store at") as info:
        api.runs("p")
    assert str(tmp_path / "branchline" / "store.db") in str(info.value)
    assert not (tmp_path / "branchline").exists()


def test_api_honours_branchline_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    store = open_store(f"sqlite:///{elsewhere / 'branchline' / 'store.db'}")
    add_run(store, entity="e", project="p", run_id="far")
    store.close()
    monkeypatch.setenv("BRANCHLINE_DIR", str(elsewhere))
    assert Api().run("e/p/far").id == "far"
    monkeypatch.delenv("BRANCHLINE_DIR")
    assert Api(overrides={"dir": str(elsewhere)}).run("e/p/far").id == "far"


def test_unknown_override_is_named() -> None:
    with pytest.raises(UsageError, match="'colour'"):
        Api(overrides={"colour": "red"})


def test_run_not_found_names_the_path(api: Api) -> None:
    with pytest.raises(RunNotFoundError) as info:
        api.run("e/p/nope")
    assert "e/p/nope" in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(RunNotFoundError, match="e/p/nope"):
        api.run("nope")  # defaults from the overrides


# -- public run fields --------------------------------------------------------------------------------


def test_run_fields(store: Store, api: Api) -> None:
    created = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC).timestamp()
    add_run(
        store,
        run_id="abc",
        name="bright-star-1",
        notes="first try",
        tags=["base", "gpu"],
        group="g",
        job_type="train",
        host="node-x",
        username="ann",
        config={"lr": 0.01, "opt": {"name": "adam"}},
        history=[(s, {"loss": 1.0 - s / 10, "text": f"s{s}"}) for s in range(4)],
        summary={"best": 0.7},
        created_at=created,
        metadata={"python": "3.11"},
    )
    run = api.run("e/p/abc")
    assert (run.id, run.name, run.display_name) == ("abc", "bright-star-1", "bright-star-1")
    assert (run.entity, run.project, run.path) == ("e", "p", ["e", "p", "abc"])
    assert run.state == "finished" and run.exit_code == 0
    assert run.config == {"lr": 0.01, "opt": {"name": "adam"}}
    assert run.summary["best"] == 0.7 and run.summary["loss"] == pytest.approx(0.7)
    assert run.summary_metrics is run.summary
    assert run.tags == ["base", "gpu"] and run.notes == "first try" == run.description
    assert (run.group, run.job_type, run.host, run.username) == ("g", "train", "node-x", "ann")
    assert run.created_at == "2025-03-04T05:06:07"
    heartbeat = datetime.fromisoformat(run.heartbeat_at).replace(tzinfo=UTC).timestamp()
    assert abs(heartbeat - time.time()) < 120
    assert run.metadata == {"python": "3.11"}
    assert run.last_step == 3 == run.lastHistoryStep
    keys = run.history_keys
    assert keys["lastStep"] == 3
    assert keys["keys"]["loss"] == {"typeCounts": [{"type": "number", "count": 4}]}
    assert keys["keys"]["text"] == {"typeCounts": [{"type": "other", "count": 4}]}
    assert run.forked_from is None and run.archived == [] and run.forks == []
    assert not run.read_only and run.incarnation == 1 and run.storage_id == run.incarnation_id
    assert repr(run) == "<Run e/p/abc (finished)>"


@pytest.mark.parametrize("path", ["e/p/abc", "e/p/runs/abc", "p/abc", "abc", "p:abc", ["e", "p", "abc"]])
def test_every_path_form_finds_the_run(store: Store, api: Api, path: Any) -> None:
    add_run(store, run_id="abc")
    assert api.run(path).path == ["e", "p", "abc"]


def test_run_with_no_history(store: Store, api: Api) -> None:
    add_run(store, run_id="empty", state="running")
    run = api.run("empty")
    assert run.last_step == -1 == run.lastHistoryStep
    assert run.history_keys == {"keys": {}, "lastStep": -1}
    assert run.state == "running"
    assert list(run.scan_history()) == []
    assert run.history(pandas=False) == []


# -- edits ----------------------------------------------------------------------------------------------


def test_update_persists_every_editable_field(backend: Backend, store: Store, api: Api) -> None:
    add_run(store, run_id="r1", name="old", config={"lr": 0.1, "keep": 1}, summary={"best": 1})
    run = api.run("r1")
    run.name = "new name"
    run.notes = "edited"
    run.tags.append("fresh")
    run.group = "grp"
    run.job_type = "eval"
    run.config["lr"] = 0.2
    run.summary["best"] = 2
    run.summary["extra"] = {"nested": True}
    run.update()
    with backend.api() as fresh:
        again = fresh.run("e/p/r1")
        assert again.name == "new name" and again.notes == "edited" and again.tags == ["fresh"]
        assert again.group == "grp" and again.job_type == "eval"
        assert again.config == {"lr": 0.2, "keep": 1}
        assert again.summary["best"] == 2 and again.summary["extra"] == {"nested": True}
        assert [r.id for r in fresh.runs("e/p", filters={"display_name": "new name"})] == ["r1"]
        assert [r.id for r in fresh.runs("e/p", filters={"summary_metrics.extra.nested": True})] == ["r1"]


def test_update_sends_only_what_changed(store: Store, api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    add_run(store, run_id="r1", config={"lr": 0.1})
    run = api.run("r1")
    sent: list[dict[str, Any]] = []
    original = api.backend.update_run

    def spy(view: Any, **fields: Any) -> None:
        sent.append(fields)
        original(view, **fields)

    monkeypatch.setattr(api.backend, "update_run", spy)
    run.update()
    assert sent == []  # nothing edited: a live run's own summary writes are never overwritten
    run.display_name = "renamed"
    run.update()
    assert sent == [{"name": "renamed"}]
    assert run.name == "renamed"


def test_load_drops_unsaved_edits(store: Store, api: Api) -> None:
    add_run(store, run_id="r1", config={"lr": 0.1})
    run = api.run("r1")
    run.config["lr"] = 5
    assert run.load().config == {"lr": 0.1}


def test_stop_asks_a_running_run_to_stop(store: Store, api: Api) -> None:
    add_run(store, run_id="live", state="running")
    add_run(store, run_id="done")
    api.run("live").stop()
    assert store.require_run("e", "p", "live").stop_requested
    with pytest.raises(UsageError, match="is finished; only a running run"):
        api.run("done").stop()
    assert not store.require_run("e", "p", "done").stop_requested


# -- projects -------------------------------------------------------------------------------------------


def test_projects(store: Store, api: Api) -> None:
    add_run(store, project="p", run_id="a")
    add_run(store, project="p", run_id="b")
    add_run(store, project="q", run_id="c")
    add_run(store, entity="other", project="z", run_id="d")
    projects = api.projects()
    assert [(p.entity, p.name, p.run_count) for p in projects] == [("e", "p", 2), ("e", "q", 1)]
    assert [p.name for p in api.projects("other")] == ["z"]
    project = api.project("q")
    assert project.path == ["e", "q"] and project.created_at is not None
    assert [r.id for r in project.runs()] == ["c"]
    assert api.project("other/z").run_count == 1
    with pytest.raises(PathError, match="Project e/missing not found"):
        api.project("missing")


def test_runs_of_the_default_project(store: Store, api: Api) -> None:
    add_run(store, run_id="a")
    assert [r.id for r in api.runs()] == ["a"]  # project "p" from the overrides
    assert repr(api.runs()).startswith("<Runs e/p")


# -- lineage -----------------------------------------------------------------------------------------------


def _lineage(store: Store) -> None:
    """src: steps 0..9; fork of src at 4 with 5..7; then src rewound at 6 with 7..8."""
    add_run(store, run_id="src", config={"lr": 0.1}, history=[(s, {"loss": float(s)}) for s in range(10)])
    add_run(
        store,
        run_id="fork",
        fork_from="src",
        branch_step=4,
        history=[(s, {"loss": 100.0 + s}) for s in range(5, 8)],
    )
    add_run(
        store,
        resume_from="src",
        branch_step=6,
        config={"lr": 0.05},
        history=[(s, {"loss": 200.0 + s}) for s in range(7, 9)],
    )


def test_forked_from_archived_and_forks(store: Store, api: Api) -> None:
    _lineage(store)
    src = api.run("src")
    fork = api.run("fork")
    origin = fork.forked_from
    assert origin is not None
    assert (origin["run_id"], origin["path"], origin["step"], origin["kind"]) == ("src", "e/p/src", 4, "fork")
    assert origin["archived"] is True  # src's first incarnation was archived by the rewind
    rewind = src.forked_from
    assert rewind is not None and (rewind["run_id"], rewind["step"], rewind["kind"]) == ("src", 6, "rewind")
    assert [f.id for f in src.forks] == ["fork"]
    assert src.incarnation == 2 and src.config == {"lr": 0.05}
    assert src.metric("loss")[1].tolist() == [0, 1, 2, 3, 4, 5, 6, 207, 208]

    (old,) = src.archived
    assert old.read_only and old.incarnation == 1 and old.id == "src"
    assert old.incarnation_id != src.incarnation_id
    assert old.config == {"lr": 0.1}
    assert old.metric("loss")[1].tolist() == [float(s) for s in range(10)]
    assert [row["loss"] for row in old.scan_history(keys=["loss"])] == [float(s) for s in range(10)]
    assert old.history(keys=["loss"], pandas=False)[-1] == {"_step": 9, "loss": 9.0}
    assert old.summary["loss"] == 9.0
    assert old.archived == []
    assert "archived incarnation 1" in repr(old)
    for action in (old.update, old.delete, old.stop, lambda: old.move("elsewhere")):
        with pytest.raises(UsageError, match="archived incarnations are read-only"):
            action()
    assert old.load().incarnation_id == old.incarnation_id


def test_logs_and_files(store: Store, api: Api) -> None:
    add_run(store, run_id="talky", console=["hello", "world"], files=[("model.pt", 1234)])
    run = api.run("talky")
    assert [line["text"] for line in run.logs()] == ["hello", "world"]
    assert [(f["path"], f["size"]) for f in run.files()] == [("model.pt", 1234)]


def test_public_names() -> None:
    import branchline.api as api_module

    assert set(api_module.__all__) >= {"Api", "Run", "Runs", "Project", "PathError"}
    assert Run.__module__ == "branchline.api.runs"


def test_a_nan_in_one_summary_does_not_break_filters_on_sqlite(tmp_path: Path) -> None:
    """Non-finite numbers are stored as the strings "NaN"/"Infinity" (strict JSON); filters keep working."""
    store = open_store(f"sqlite:///{tmp_path / 'nan.db'}")
    add_run(store, run_id="fine", summary={"loss": 0.5, "note": "NaNoWriMo"})
    add_run(store, run_id="broken", summary={"loss": float("nan")})
    with Api(overrides={"store_url": store.url}) as api:
        assert [r.id for r in api.runs("e/p", filters={"summary_metrics.loss": {"$lt": 1}})] == ["fine"]
        assert [r.id for r in api.runs("e/p", filters={"summary_metrics.note": {"$regex": "^NaN"}})] == ["fine"]
        # "NaN" is a string, and strings rank above numbers when sorting descending.
        assert [r.id for r in api.runs("e/p", order="-summary_metrics.loss")] == ["broken", "fine"]
        assert [r.id for r in api.runs("e/p", order="+summary_metrics.loss")] == ["fine", "broken"]
        assert math.isnan(api.run("e/p/broken").summary["loss"])
    store.close()
