"""Moving and deleting runs through the public API, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from branchline.api import Api
from branchline.errors import RunNotFoundError, UsageError
from branchline.store.schema import console_lines, history_chunks, history_values, incarnations, run_files
from branchline.store.store import Store, open_store
from tests.backends import Backend
from tests.store_factory import add_run, write_series

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


def _rows_of(store: Store, incarnation_ids: list[str]) -> dict[str, int]:
    """How many rows each data table still holds for these incarnations."""
    counts = {}
    with store.engine.connect() as conn:
        for table in (history_chunks, history_values, console_lines, run_files, incarnations):
            column = table.c.id if table is incarnations else table.c.incarnation_id
            counts[table.name] = int(
                conn.execute(select(func.count()).select_from(table).where(column.in_(incarnation_ids))).scalar_one()
            )
    return counts


def _history_run(store: Store, run_id: str, **kwargs: object) -> None:
    add_run(
        store,
        run_id=run_id,
        history=[(s, {"loss": 1.0 / (s + 1), "note": f"n{s}"}) for s in range(50)],
        console=["line one", "line two"],
        files=[("weights.bin", 10)],
        **kwargs,  # type: ignore[arg-type]
    )


# -- move ------------------------------------------------------------------------------------------------


def test_moved_run_is_found_under_the_new_project_with_identical_history(store: Store, api: Api) -> None:
    _history_run(store, "mover", config={"lr": 0.1})
    before = api.run("e/p/mover")
    steps, values = before.metric("loss")
    rows = list(before.scan_history())
    before.move("q")
    assert before.path == ["e", "q", "mover"]
    after = api.run("e/q/mover")
    got_steps, got_values = after.metric("loss")
    assert np.array_equal(got_steps, steps) and np.array_equal(got_values, values)
    assert list(after.scan_history()) == rows
    assert after.config == {"lr": 0.1} and [f["path"] for f in after.files()] == ["weights.bin"]
    assert [line["text"] for line in after.logs()] == ["line one", "line two"]
    assert [r.id for r in api.runs("e/q")] == ["mover"]
    assert list(api.runs("e/p")) == []
    with pytest.raises(RunNotFoundError, match="e/p/mover"):
        api.run("e/p/mover")


def test_move_to_another_entity_keeps_lineage_links(store: Store, api: Api) -> None:
    _history_run(store, "src")
    add_run(store, run_id="child", fork_from="src", branch_step=9, history=[(10, {"loss": 0.0})])
    api.run("src").move("other-project", entity="team")
    child = api.run("e/p/child")
    origin = child.forked_from
    assert origin is not None and origin["path"] == "team/other-project/src"
    assert child.metric("loss")[0].tolist() == [*range(10), 10]
    moved = api.run("team/other-project/src")
    assert [f.id for f in moved.forks] == ["child"]


def test_move_onto_an_existing_run_id_is_refused(store: Store, api: Api) -> None:
    add_run(store, project="p", run_id="same")
    add_run(store, project="q", run_id="same")
    with pytest.raises(UsageError, match="already has a run 'same'"):
        api.run("e/p/same").move("q")
    assert api.run("e/p/same").project == "p"


# -- delete ------------------------------------------------------------------------------------------------


def test_deleted_run_is_gone_from_listings_and_its_data_removed(store: Store, api: Api) -> None:
    _history_run(store, "doomed")
    _history_run(store, "kept")
    run = api.run("doomed")
    ids = [run.incarnation_id]
    assert all(count > 0 for count in _rows_of(store, ids).values())
    run.delete()
    assert [r.id for r in api.runs("e/p")] == ["kept"]
    assert len(api.runs("e/p", filters={"name": "doomed"})) == 0
    assert [p.run_count for p in api.projects()] == [1]
    with pytest.raises(RunNotFoundError, match="e/p/doomed"):
        api.run("doomed")
    assert _rows_of(store, ids) == dict.fromkeys(_rows_of(store, ids), 0)
    kept = api.run("kept")
    assert len(kept.metric("loss")[0]) == 50  # the other run is untouched
    with pytest.raises(UsageError, match="deleted"):
        run.delete()
    with pytest.raises(UsageError, match="deleted"):
        run.update()


def test_deleting_a_rewound_run_removes_every_incarnation(store: Store, api: Api) -> None:
    _history_run(store, "twice")
    add_run(store, resume_from="twice", branch_step=20, history=[(21, {"loss": 5.0})])
    run = api.run("twice")
    ids = [run.incarnation_id, *(old.incarnation_id for old in run.archived)]
    assert len(ids) == 2
    run.delete()
    assert _rows_of(store, ids) == dict.fromkeys(_rows_of(store, ids), 0)


def test_forks_of_a_deleted_run_stay_readable(store: Store, api: Api) -> None:
    """Deleting a run detaches the incarnations its forks read instead of deleting them; the last
    fork to go takes them along."""
    _history_run(store, "parent")
    add_run(store, run_id="child", fork_from="parent", branch_step=29, history=[(s, {"loss": -1.0}) for s in (30, 31)])
    parent = api.run("parent")
    parent_inc = parent.incarnation_id
    parent.delete()
    assert [r.id for r in api.runs("e/p")] == ["child"]
    child = api.run("child")
    steps, values = child.metric("loss")
    assert steps.tolist() == [*range(30), 30, 31]
    assert values[:30].tolist() == [1.0 / (s + 1) for s in range(30)] and values[30:].tolist() == [-1.0, -1.0]
    assert [r["note"] for r in child.scan_history(keys=["note"])] == [f"n{s}" for s in range(30)]
    origin = child.forked_from
    assert origin is not None
    assert origin["deleted"] is True and origin["path"] == "e/p/parent" and origin["step"] == 29
    kept = _rows_of(store, [parent_inc])
    assert kept["incarnations"] == 1 and kept["history_chunks"] > 0
    child.delete()
    assert _rows_of(store, [parent_inc]) == dict.fromkeys(kept, 0)


def test_deleting_frees_disk_space(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'big.db'}"
    store = open_store(url)
    add_run(store, run_id="small", history=[(0, {"x": 1.0})])
    view = add_run(store, run_id="big")
    rng = np.random.default_rng(0)
    write_series(store, view.incarnation_id, "noise", np.arange(400_000, dtype=np.int64), rng.random(400_000))
    store.close()  # checkpoint the WAL into the file
    full = (tmp_path / "big.db").stat().st_size
    with Api(overrides={"store_url": url}) as api:
        api.run("e/p/big").delete()
    open_store(url).close()
    assert (tmp_path / "big.db").stat().st_size < full / 4
