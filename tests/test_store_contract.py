"""One behavioural contract for every store backend: SQLite and the real PostgreSQL."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from branchline.errors import RunNotFoundError, SchemaError, UsageError
from branchline.runspec import RunSpec
from branchline.store import Store, open_store
from branchline.store.engine import make_engine
from branchline.vocab import RecordKind

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    name = f"branchline_contract_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    else:
        url = request.getfixturevalue("pg_url")
        s = open_store(url)
        with s.engine.begin() as conn:
            tables = ", ".join(f'"{t}"' for t in s.engine.dialect.get_table_names(conn) if t != "alembic_version")
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield s
    s.close()


def spec(run_id: str, **fields: Any) -> RunSpec:
    return RunSpec(
        entity="team",
        project="proj",
        run_id=run_id,
        incarnation_id=secrets.token_hex(8),
        session_id=secrets.token_hex(8),
        host="elsewhere",  # not this host: liveness comes from heartbeats, not pids
        started_at=time.time(),
        **fields,
    )


def history(start: int, stop: int, seq0: int = 1, scale: float = 1.0) -> list[list[Any]]:
    return [
        [seq0 + i, int(RecordKind.HISTORY), step, 1000.0 + step, float(step), {"loss": scale * step, "tag": f"s{step}"}]
        for i, step in enumerate(range(start, stop))
    ]


def finish(store: Store, s: RunSpec, seq: int, code: int = 0) -> None:
    store.apply(s.session_id, [[seq, int(RecordKind.EXIT), code, "finished" if code == 0 else "failed", 1.0]])


def test_new_run_and_history(store: Store) -> None:
    s = spec("r1", config={"lr": 0.1}, tags=["a"], name="first")
    start = store.begin_run(s)
    assert (start.starting_step, start.name, start.tags, start.config) == (0, "first", ["a"], {"lr": 0.1})
    assert store.apply(s.session_id, history(0, 5000)) == 5000
    finish(store, s, 5001)
    view = store.require_run("team", "proj", "r1")
    assert view.state == "finished" and view.exit_code == 0 and view.last_step == 4999
    assert view.summary["loss"] == 4999 and view.summary["tag"] == "s4999" and view.summary["_step"] == 4999
    steps, values = store.read_series(view.incarnation_id, "loss")
    assert steps.tolist() == list(range(5000)) and values.tolist() == [float(i) for i in range(5000)]
    assert store.read_objects(view.incarnation_id, "tag")[:2] == [(0, "s0"), (1, "s1")]
    keys = store.history_keys(view.incarnation_id)
    assert keys["loss"]["numeric"] and not keys["tag"]["numeric"] and keys["loss"]["count"] == 5000


def test_apply_is_idempotent_and_batches_may_overlap(store: Store) -> None:
    s = spec("r1")
    store.begin_run(s)
    records = history(0, 100)
    store.apply(s.session_id, records[:60])
    store.apply(s.session_id, records[:60])  # a retry
    store.apply(s.session_id, records[40:])  # an overlapping replay
    assert store.applied_seq(s.session_id) == 100
    view = store.require_run("team", "proj", "r1")
    steps, _ = store.read_series(view.incarnation_id, "loss")
    assert steps.tolist() == list(range(100))
    assert store.begin_run(s).incarnation_id == view.incarnation_id  # replayed header


def test_unknown_session_is_refused(store: Store) -> None:
    with pytest.raises(Exception, match="Unknown writer session"):
        store.apply("nope", history(0, 1))


def test_duplicate_id_resume_rules(store: Store) -> None:
    s = spec("r1", config={"a": 1, "b": 1})
    store.begin_run(s)
    store.apply(s.session_id, history(0, 10))
    finish(store, s, 11)
    with pytest.raises(UsageError, match="already exists"):
        store.begin_run(spec("r1"))
    with pytest.raises(UsageError, match="resume='never'"):
        store.begin_run(spec("r1", resume="never"))
    with pytest.raises(UsageError, match="resume='must'"):
        store.begin_run(spec("other", resume="must"))
    resumed = store.begin_run(spec("r1", resume="allow", config={"b": 2}))
    assert resumed.resumed and resumed.starting_step == 10 and resumed.config == {"a": 1, "b": 2}
    assert resumed.summary["loss"] == 9


def test_fork_and_rewind(store: Store) -> None:
    src = spec("src", config={"lr": 1})
    store.begin_run(src)
    store.apply(src.session_id, history(0, 100))
    finish(store, src, 101)
    fork = spec("fk", fork_from="src", branch_step=40, config={"lr": 2})
    start = store.begin_run(fork)
    assert start.starting_step == 41 and start.config == {"lr": 2}
    assert start.summary["loss"] == 40 and start.forked_from["run_id"] == "src"  # type: ignore[index]
    store.apply(fork.session_id, history(41, 45, scale=-1))
    view = store.require_run("team", "proj", "fk")
    steps, values = store.read_series(view.incarnation_id, "loss")
    assert steps.tolist() == list(range(45)) and values[-1] == -44
    rewind = spec("src", resume_from="src", branch_step=10)
    started = store.begin_run(rewind)
    assert started.starting_step == 11 and started.forked_from["archived"]  # type: ignore[index]
    src_view = store.require_run("team", "proj", "src")
    steps, _ = store.read_series(src_view.incarnation_id, "loss")
    assert steps.tolist() == list(range(11))
    (archived,) = store.archived(src_view)
    assert archived.last_step == 99 and archived.archived
    # The fork still reads the archived incarnation's history up to step 40.
    steps, _ = store.read_series(view.incarnation_id, "loss")
    assert steps.tolist() == list(range(45))
    assert [f.run_id for f in store.forks(src_view)] == ["fk"]
    with pytest.raises(RunNotFoundError):
        store.begin_run(spec("x", fork_from="missing", branch_step=1))


def test_rewind_of_a_live_run_is_refused_until_it_goes_silent(store: Store) -> None:
    s = spec("live")
    store.begin_run(s)
    with pytest.raises(UsageError, match="still running"):
        store.begin_run(spec("live", resume_from="live", branch_step=0))
    short = Store(store.url, crash_timeout=0.0)
    try:
        assert short.reap_stale() == 1
        assert short.require_run("team", "proj", "live").state == "crashed"
        short.begin_run(spec("live", resume_from="live", branch_step=0))
    finally:
        short.close()


def test_heartbeat_stop_and_crashed_back_to_running(store: Store) -> None:
    s = spec("hb")
    start = store.begin_run(s)
    assert store.heartbeat(start.incarnation_id) is False
    store.mark_crashed(start.incarnation_id)
    assert store.require_run("team", "proj", "hb").state == "crashed"
    store.apply(s.session_id, history(0, 3))
    assert store.require_run("team", "proj", "hb").state == "running"  # data again: alive
    store.request_stop(store.require_run("team", "proj", "hb"))
    assert store.heartbeat(start.incarnation_id) is True


def test_update_move_delete(store: Store) -> None:
    s = spec("r1", config={"a": 1})
    store.begin_run(s)
    store.apply(s.session_id, history(0, 10))
    view = store.require_run("team", "proj", "r1")
    store.update_run(
        view, name="renamed", notes="n", tags=["x"], group="g", job_type="eval", config={"a": 2}, summary={"best": 1}
    )
    view = store.require_run("team", "proj", "r1")
    assert (view.name, view.notes, view.tags, view.group, view.job_type, view.config, view.summary) == (
        "renamed",
        "n",
        ["x"],
        "g",
        "eval",
        {"a": 2},
        {"best": 1},
    )
    with pytest.raises(UsageError, match="Cannot update"):
        store.update_run(view, color="red")
    store.move_run(view, "other")
    assert store.get_run("team", "proj", "r1") is None
    moved = store.require_run("team", "other", "r1")
    assert store.read_series(moved.incarnation_id, "loss")[0].tolist() == list(range(10))
    store.delete_run(moved)
    assert store.get_run("team", "other", "r1") is None
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM history_chunks")).scalar() == 0


def test_list_count_projects(store: Store) -> None:
    for n in range(5):
        s = spec(f"r{n}")
        store.begin_run(s)
        finish(store, s, 1, code=n % 2)
    assert store.count_runs("team", "proj") == 5
    assert [r.run_id for r in store.list_runs("team", "proj", limit=2, offset=1)] == ["r1", "r2"]
    assert [r.run_id for r in store.list_runs("team", "proj", order="-created_at")][:2] == ["r4", "r3"]
    assert store.count_runs("team", "proj", filters={"state": "failed"}) == 2
    (project,) = store.list_projects("team")
    assert project["name"] == "proj" and project["run_count"] == 5


def test_define_metric_aggregates_survive_in_the_store(store: Store) -> None:
    s = spec("agg")
    store.begin_run(s)
    metric = {
        "name": "loss",
        "step_metric": None,
        "step_sync": False,
        "hidden": False,
        "summary": ["min", "max", "mean"],
    }
    store.apply(s.session_id, [[1, int(RecordKind.METRIC), metric, False], *history(0, 10, seq0=2)])
    view = store.require_run("team", "proj", "agg")
    assert view.summary["loss"] == {"min": 0, "max": 9, "mean": 4.5}
    fork = store.begin_run(spec("fk", fork_from="agg", branch_step=4))
    assert fork.summary["loss"] == {"min": 0, "max": 4, "mean": 2.0}


def test_schema_revision_is_checked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    open_store(url).close()
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000_ancient'"))
    engine.dispose()
    with pytest.raises(SchemaError, match="branchline db upgrade --store"):
        open_store(url)


def test_history_keys_of_a_fork_count_only_visible_points(store: Store) -> None:
    src = spec("src")
    store.begin_run(src)
    store.apply(src.session_id, history(0, 5000))  # several chunks
    fork = spec("fk", fork_from="src", branch_step=3000)
    store.begin_run(fork)
    store.apply(fork.session_id, history(3001, 3011))
    view = store.require_run("team", "proj", "fk")
    keys = store.history_keys(view.incarnation_id)
    assert keys["loss"]["count"] == 3011 and keys["loss"]["last_step"] == 3010
    assert keys["tag"]["count"] == 3011
