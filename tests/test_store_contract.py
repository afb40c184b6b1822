"""One behavioural contract for every store backend: SQLite and the real PostgreSQL.

Every method of every role in store/interface.py is called here (a test below holds the suite
to that), through one fixture that opens the store on each backend.
"""

from __future__ import annotations

import ast
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from branchline.errors import RunNotFoundError, SchemaError, StoreError, UsageError
from branchline.runspec import RunSpec
from branchline.store import Store, open_store
from branchline.store.artifacts import EntryRow
from branchline.store.engine import make_engine
from branchline.store.interface import ROLES, role_methods
from branchline.vocab import RecordKind
from tests import store_factory

any_store_url = store_factory.any_store_url


@pytest.fixture
def store(any_store_url: str, tmp_path: Path) -> Iterator[Store]:
    """A fresh store on each backend: SQLite always, PostgreSQL when it answers (else skipped, saying why)."""
    s = open_store(any_store_url, files_dir=tmp_path / "files")
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


def test_media_types_follow_the_lineage(store: Store) -> None:
    image = {"_type": "image-file", "path": "media/images/x.png", "sha256": "ab", "size": 3}
    chart = {"_type": "table-file", "path": "media/table/c.table.json", "chart": {"preset": "pr_curve"}}
    src = spec("src")
    store.begin_run(src)
    rows = [
        [1 + step, int(RecordKind.HISTORY), step, 1000.0 + step, float(step), row]
        for step, row in enumerate(
            [
                {"loss": 1.0, "img": image, "note": "plain", "cfg": {"a": 1}},
                {"loss": 0.5, "img": image, "pr": chart, "hist": {"_type": "histogram", "values": [1], "bins": [0, 1]}},
                {"later": image},
            ]
        )
    ]
    store.apply(src.session_id, rows)
    fork = spec("fk", fork_from="src", branch_step=1)
    store.begin_run(fork)
    store.apply(fork.session_id, [[1, int(RecordKind.HISTORY), 2, 1.0, 2.0, {"own": {"_type": "audio-file"}}]])
    found = store.media_types([src.incarnation_id, fork.incarnation_id, "nope"])
    assert found[src.incarnation_id] == {
        "img": "image-file",
        "pr": "plot/pr_curve",
        "hist": "histogram",
        "later": "image-file",
    }
    # The fork sees its source's media keys and its own (beyond the branch step too: a key's type only).
    assert found[fork.incarnation_id]["img"] == "image-file" and found[fork.incarnation_id]["own"] == "audio-file"
    assert found["nope"] == {}
    assert store.media_types([src.incarnation_id], stream=1) == {src.incarnation_id: {}}


def test_incarnations_lineage_and_owners(store: Store) -> None:
    src = spec("src")
    store.begin_run(src)
    store.apply(src.session_id, history(0, 20))
    fork = spec("fk", fork_from="src", branch_step=9)
    store.begin_run(fork)
    store.apply(fork.session_id, history(10, 12))
    view = store.require_run("team", "proj", "fk")
    assert store.get_incarnation(view.incarnation_id) == view
    assert store.get_incarnation("nope") is None
    (parent, own) = store.lineage(view.incarnation_id)
    assert parent == (src.incarnation_id, 9) and own[0] == fork.incarnation_id and own[1] >= 11
    assert store.incarnation_owner(src.incarnation_id) == ("team", "proj")
    assert store.session_owner(fork.session_id) == ("team", "proj", fork.incarnation_id)
    assert store.session_owner("nope") is None
    # A deleted run's incarnation that a fork still reads keeps its old owner.
    store.delete_run(store.require_run("team", "proj", "src"))
    owners = store.incarnation_owners([src.incarnation_id, view.incarnation_id, "nope"])
    assert owners == {src.incarnation_id: ("team", "proj"), view.incarnation_id: ("team", "proj")}
    assert store.incarnation_owner(src.incarnation_id) == ("team", "proj")


def test_history_for_charts(store: Store) -> None:
    a, b = spec("a"), spec("b")
    for s in (a, b):
        store.begin_run(s)
        store.apply(s.session_id, history(0, 300))
    ids = [a.incarnation_id, b.incarnation_id]
    many = store.history_keys_many(ids)
    assert set(many) == set(ids) and many[a.incarnation_id]["loss"]["count"] == 300
    overviews = store.read_series_overviews(ids, "loss", points=50)
    assert overviews[b.incarnation_id].count == 300 and not overviews[b.incarnation_id].sketched
    series = store.chart_series(ids, ["loss", "_runtime"], buckets=10)
    assert [(c.incarnation_id, c.key) for c in series] == [(i, k) for i in ids for k in ("loss", "_runtime")]
    loss = series[0]
    assert loss.count == 300 and loss.sampled and len(loss.x) <= 22 and loss.last_step == 299
    assert loss.y.max() == 299.0 and loss.y.min() == 0.0  # extremes kept
    (against,) = store.chart_series([a.incarnation_id], ["loss"], x="_runtime", buckets=1000, min_step=10, max_step=19)
    assert against.count == 10 and not against.sampled and against.y.tolist() == [float(i) for i in range(10, 20)]
    assert against.x.tolist() == sorted(against.x.tolist())
    assert store.chart_series(ids, []) == []


def test_project_stats(store: Store) -> None:
    for n, state in enumerate(["finished", "failed", "finished"]):
        store_factory.add_run(
            store, entity="team", project="proj", run_id=f"r{n}", state=state, config={"lr": n, "opt": {"m": 1}}
        )
    (row,) = store.project_activity("team")
    assert (row["name"], row["run_count"], row["running_count"]) == ("proj", 3, 0)
    assert row["last_activity"] is not None and store.project_activity("nobody") == []
    assert store.state_counts("team", "proj") == {"finished": 2, "failed": 1}
    columns = store.project_columns("team", "proj")
    assert columns["config"] == ["lr", "opt.m"]
    assert store.project_columns("team", "proj", cap=1)["config"] == ["lr"]


def test_console_files_and_alerts(store: Store) -> None:
    s = spec("tele")
    store.begin_run(s)
    records: list[list[Any]] = [
        [1, int(RecordKind.OUTPUT), [["stdout", 1.0, "hello"], ["stderr", 2.0, "oops"]]],
        [2, int(RecordKind.ALERT), "Loss spike", "loss hit 50", "WARN", 3.0],
    ]
    store.apply(s.session_id, records)
    inc = s.incarnation_id
    assert [(line["stream"], line["text"]) for line in store.console_lines(inc)] == [
        ("stdout", "hello"),
        ("stderr", "oops"),
    ]
    assert [(a["title"], a["level"]) for a in store.alerts(inc)] == [("Loss spike", "WARN")]
    store.write_file(inc, "out/model.txt", b"weights")
    assert store.read_file(inc, "out/model.txt") == b"weights"
    store.add_run_file(inc, "remote.bin", 3, "c" * 64)
    listed = {f["path"]: f for f in store.files(inc)}
    assert listed["remote.bin"]["size"] == 3 and listed["out/model.txt"]["size"] == 7
    with pytest.raises(UsageError):
        store.read_file(inc, "../escape")
    with pytest.raises(UsageError, match="not stored here"):
        store.read_file(inc, "remote.bin")
    store.add_run_file(inc, "copy.bin", 3, "c" * 64)  # same content as remote.bin
    removed = store.delete_file(inc, "remote.bin")
    assert removed is not None and removed["sha256"] == "c" * 64 and removed["shared"]  # copy.bin still names it
    last = store.delete_file(inc, "copy.bin")
    assert last is not None and last["path"] == "copy.bin" and not last["shared"]  # nothing names it now
    gone = store.delete_file(inc, "out/model.txt")
    assert gone is not None and not gone["shared"] and gone["size"] == 7
    assert store.files(inc) == []
    assert store.delete_file(inc, "out/model.txt") is None  # already gone
    with pytest.raises(UsageError, match="not stored here"):
        store.read_file(inc, "out/model.txt")  # its content went with it


def test_stream_sessions_and_console_lines_at_numbers(store: Store) -> None:
    s = spec("streams")
    store.begin_run(s)
    inc = s.incarnation_id
    history = store.stream_session(inc, "history")
    assert store.stream_session(inc, "history") == history != store.stream_session(inc, "events")
    assert store.applied_seq(history) == 0
    row = [[1, int(RecordKind.HISTORY), 0, 1.0, 0.5, {"loss": 1.0}]]
    assert store.apply(history, row) == 1 and store.apply(history, row) == 1  # a replay stores nothing
    assert store.read_series(inc, "loss")[0].tolist() == [0]
    store.set_console_lines(inc, 0, [["stdout", 1.0, "progress 10"], ["stdout", 1.0, "next"]])
    store.set_console_lines(inc, 0, [["stdout", 2.0, "progress 90"]])
    assert [line["text"] for line in store.console_lines(inc)] == ["progress 90", "next"]
    with pytest.raises(StoreError):
        store.stream_session("nope", "history")


def test_auth_directory(store: Store) -> None:
    assert store.user_count() == 0
    store.create_user("alice", email="a@example.com", admin=True)
    store.create_user("bob")
    assert [u.username for u in store.list_users()] == ["alice", "bob"] and store.user_count() == 2
    row, key = store.create_api_key("alice", name="laptop")
    found = store.authenticate(key)
    assert found is not None and found.username == "alice" and found.admin
    assert store.authenticate(key + "x") is None
    assert [k.id for k in store.list_api_keys("alice")] == [row.id]
    assert store.revoke_api_key(row.id) and store.authenticate(key) is None
    store.create_team("ml")
    store.add_team_member("ml", "bob", role="admin")
    (team,) = store.list_teams()
    assert team.name == "ml" and team.members == (("bob", "admin"),)
    assert store.remove_team_member("ml", "bob") and not store.remove_team_member("ml", "bob")
    store.begin_run(spec("r"))
    assert not store.project_is_public("team", "proj")
    store.set_project_public("team", "proj", True)
    assert store.project_is_public("team", "proj")


def _commit(store: Store, digest: str, incarnation_id: str | None, **fields: Any) -> Any:
    row, _ = store.commit_artifact(
        entity="team",
        project="proj",
        name="ds",
        type="dataset",
        digest=digest,
        entries=[EntryRow("x.bin", "a" * 64, 10), EntryRow("ref.bin", "b" * 64, 5, "s3://b/ref.bin")],
        description=None,
        metadata={"k": 1},
        aliases=fields.pop("aliases", []),
        incarnation_id=incarnation_id,
        role="logged",
        **fields,
    )
    return row


def test_artifact_index(store: Store) -> None:
    producer, consumer = spec("producer"), spec("consumer")
    store.begin_run(producer)
    store.begin_run(consumer)
    v0 = _commit(store, "1" * 64, producer.incarnation_id, aliases=["best"])
    v1 = _commit(store, "2" * 64, None)
    assert store.get_artifact(v0.id) == store.resolve_artifact("team", "proj", "ds", "best")
    assert [v.version for v in store.artifact_versions("team", "proj", "ds")] == ["v1", "v0"]  # newest first
    assert [c["name"] for c in store.artifact_collections("team", "proj", "dataset")] == ["ds"]
    assert [(e.path, e.ref) for e in store.artifact_entries(v0.id)] == [("ref.bin", "s3://b/ref.bin"), ("x.bin", None)]
    store.use_artifact(v0.id, consumer.incarnation_id)
    assert [v.id for v in store.run_artifacts(consumer.incarnation_id, "used")] == [v0.id]
    assert store.artifact_users(v0.id, "logged") == [producer.incarnation_id]
    summaries = store.run_artifact_summaries(producer.incarnation_id)
    assert [(r["name"], r["version"], r["aliases"]) for r in summaries["logged"]] == [("ds", "v0", ["best"])]
    assert store.run_artifact_summaries(consumer.incarnation_id)["used"][0]["id"] == v0.id
    store.set_artifact_aliases(v0.id, ["gold"])
    assert store.resolve_artifact("team", "proj", "ds", "gold").id == v0.id  # type: ignore[union-attr]
    store.update_artifact(v0.id, description="first", metadata={"k": 2})
    edited = store.get_artifact(v0.id)
    assert edited is not None and edited.description == "first" and edited.metadata == {"k": 2}
    assert store.referenced_blobs(["a" * 64, "f" * 64]) == {"a" * 64}
    assert store.blob_in_project("team", "proj", "a" * 64)
    assert not store.blob_in_project("team", "proj", "b" * 64)  # a reference, not a stored blob
    assert not store.blob_in_project("team", "other", "a" * 64)
    store.add_run_file(producer.incarnation_id, "f.txt", 1, "e" * 64)
    assert store.blob_in_project("team", "proj", "e" * 64)
    assert store.referenced_blobs(["e" * 64, "f" * 64]) == {"e" * 64}  # a run file's content is kept too
    with pytest.raises(UsageError):
        store.delete_artifact(v0.id)  # aliased
    store.delete_artifact(v0.id, delete_aliases=True)
    assert store.get_artifact(v0.id) is None and store.get_artifact(v1.id) is not None


def test_pending_artifact_uploads_are_kept_until_committed_or_stale(store: Store, any_store_url: str) -> None:
    from branchline.store.pending_uploads import PendingUpload

    def pending(upload_id: str, client_id: str | None, created_at: float) -> PendingUpload:
        return PendingUpload(
            id=upload_id,
            entity="team",
            project="proj",
            name="ds",
            type="dataset",
            digest="d" * 32,
            description="two files",
            metadata={"k": 1, "nested": [1.5, None]},
            aliases=["best"],
            incarnation_id=None,
            client_id=client_id,
            created_at=created_at,
        )

    now = time.time()
    store.create_pending_upload(pending("u1", "client-1", now))
    with pytest.raises(UsageError, match="exists already"):
        store.create_pending_upload(pending("u1", None, now))
    got = store.get_pending_upload("u1")
    assert got == pending("u1", "client-1", now)  # no files, no entries yet
    assert store.get_pending_upload("nope") is None
    # Another process (a second replica) sees every change at once.
    with open_store(any_store_url) as other:
        assert other.add_pending_upload_file("u1", "data/a.txt", "a" * 64, 5)
        assert other.pending_upload_by_client_id("client-1") == "u1"
    assert store.add_pending_upload_file("u1", "data/b.txt", "b" * 64, 4)
    assert store.add_pending_upload_file("u1", "data/b.txt", "c" * 64, 6)  # a retry keeps the last content
    assert not store.add_pending_upload_file("nope", "x", "a" * 64, 1)
    entries = [EntryRow("data/a.txt", "a" * 64, 5, None, {"md5": "m"}), EntryRow("r", "e", None, "file:///r", None)]
    assert store.set_pending_upload_entries("u1", entries)
    assert not store.set_pending_upload_entries("nope", entries)
    got = store.get_pending_upload("u1")
    assert got is not None and got.entries == entries
    assert got.files == {"data/a.txt": ("a" * 64, 5), "data/b.txt": ("c" * 64, 6)}

    # Committed: no longer in flight, but its client id still names the version.
    assert store.finish_pending_upload("u1")
    assert not store.finish_pending_upload("u1")
    assert store.get_pending_upload("u1") is None
    assert not store.add_pending_upload_file("u1", "late.txt", "a" * 64, 1)
    assert store.pending_upload_by_client_id("client-1") == "u1"
    assert store.pending_upload_by_client_id("unknown") is None

    # Stale ones (older than a day by default) are dropped with their files.
    store.create_pending_upload(pending("old", "client-old", now - 2 * 86400))
    assert store.add_pending_upload_file("old", "a.txt", "a" * 64, 5)
    store.create_pending_upload(pending("new", None, now))
    assert store.drop_stale_uploads() == 1
    assert store.get_pending_upload("old") is None and store.pending_upload_by_client_id("client-old") is None
    assert store.get_pending_upload("new") is not None
    assert store.drop_stale_uploads(older_than=-60) == 2  # u1 (committed) and new


def test_workspace_layouts_are_saved_per_project_and_view(store: Store) -> None:
    from branchline.store.workspaces import WorkspaceConflictError

    assert store.get_workspace("team", "proj") is None
    layout = {"sections": [{"name": "Charts", "panels": [{"id": "p1", "kind": "line", "keys": ["loss", "acc"]}]}]}
    first = store.save_workspace("team", "proj", layout, expected_version=0, updated_by="ada")
    assert first.version == 1 and first.updated_by == "ada"
    got = store.get_workspace("team", "proj")
    assert got is not None and got.layout == layout and got.version == 1 and got.updated_at == first.updated_at
    assert store.get_workspace("team", "proj", view="run") is None  # each view keeps its own
    assert store.get_workspace("team", "other") is None
    # A save that edited an older version is refused, saying which version is current.
    with pytest.raises(WorkspaceConflictError) as caught:
        store.save_workspace("team", "proj", {"sections": []}, expected_version=0)
    assert caught.value.current_version == 1 and "version 1" in str(caught.value)
    second = store.save_workspace("team", "proj", {"sections": []}, expected_version=1)
    assert second.version == 2
    assert store.save_workspace("team", "proj", layout).version == 3  # no expected version: last write wins
    with pytest.raises(UsageError, match="view"):
        store.get_workspace("team", "proj", view="nope")
    assert store.delete_workspace("team", "proj")
    assert not store.delete_workspace("team", "proj")
    assert store.get_workspace("team", "proj") is None
    # After a reset the next save starts again from version 1.
    assert store.save_workspace("team", "proj", layout, view="run", expected_version=0).version == 1


def test_close_releases_the_store(any_store_url: str) -> None:
    s = open_store(any_store_url)
    s.close()
    with open_store(any_store_url) as again:
        assert again.list_projects() == []


def test_a_live_run_is_killed_once(store: Store) -> None:
    s = spec("stuck")
    start = store.begin_run(s)
    assert store.mark_killed(start.incarnation_id, "no answer to the stop")
    assert store.require_run("team", "proj", "stuck").state == "killed"
    assert not store.mark_killed(start.incarnation_id, "again")  # no longer live


def test_a_lease_is_held_by_one_holder_at_a_time(store: Store, any_store_url: str) -> None:
    first = store.lease("reaper")
    assert first.acquire() and first.held
    with open_store(any_store_url) as other:
        second = other.lease("reaper")
        assert not second.acquire()
        first.release()
        assert second.acquire()
        second.release()


def _called_methods() -> set[str]:
    """Names this module calls as methods (`x.name(...)`), read from its source."""
    tree = ast.parse(Path(__file__).read_text())
    return {
        node.func.attr for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }


@pytest.mark.parametrize("role", ROLES, ids=lambda role: role.__name__)
def test_every_method_of_the_interface_is_in_this_contract(role: type) -> None:
    declared = role_methods(role)
    assert declared, f"{role.__name__} declares no methods"
    missing = declared - _called_methods()
    assert not missing, f"{role.__name__} methods not exercised by the contract suite: {sorted(missing)}"
