"""Reading history through the public API: sampled `history`, `scan_history`, `metric`, `histories`."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from branchline.api import Api, KeysError
from branchline.errors import UsageError
from branchline.store.store import Store
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


def _mixed_run(store: Store) -> None:
    """a: every step 0..99; b: even steps; c: multiples of 10, strings; epoch: every step, decreasing."""
    rows = []
    for step in range(100):
        row: dict[str, Any] = {"a": float(step % 17), "epoch": 1000 - step}
        if step % 2 == 0:
            row["b"] = step * 2
        if step % 10 == 0:
            row["c"] = f"note {step}"
        rows.append((step, row))
    add_run(store, run_id="mixed", history=rows, system=[{"cpu": float(i)} for i in range(30)])


# -- history: sampling -----------------------------------------------------------------------------------


def test_history_keeps_a_single_spike_and_dip_among_100k_points(store: Store, api: Api) -> None:
    view = add_run(store, run_id="spiky")
    n = 100_000
    rng = np.random.default_rng(3)
    values = rng.normal(1.0, 0.01, n)
    values[73_457] = 50.0  # the spike
    values[12_345] = -50.0  # and a dip
    write_series(store, view.incarnation_id, "loss", np.arange(n, dtype=np.int64), values)
    run = api.run("spiky")
    frame = run.history(samples=500, keys=["loss"])
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["_step", "loss"]
    assert 400 < len(frame) <= 500
    assert frame["loss"].max() == 50.0 and frame["loss"].min() == -50.0
    steps = frame["_step"].tolist()
    assert 73_457 in steps and 12_345 in steps
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == n - 1
    assert frame.loc[frame["_step"] == 73_457, "loss"].item() == 50.0
    # Every row is a real point of the series, not an average.
    assert np.array_equal(frame["loss"].to_numpy(), values[frame["_step"].to_numpy()])
    # Every bucket's extremes survive, not only the global ones.
    buckets = (500 - 2) // 2
    size = -(-n // buckets)
    kept = set(steps)
    for start in range(0, n, size * 37):
        chunk = values[start : start + size]
        assert start + int(chunk.argmax()) in kept and start + int(chunk.argmin()) in kept
    # The same without keys: _runtime/_timestamp do not eat the budget, the spike stays.
    assert run.history(samples=500)["loss"].max() == 50.0


def test_history_with_several_keys_keeps_each_keys_extremes(store: Store, api: Api) -> None:
    rows = []
    for step in range(5000):
        rows.append((step, {"x": 1.0 if step != 4321 else 9.0, "y": 0.0 if step != 777 else -9.0}))
    add_run(store, run_id="two", history=rows)
    frame = api.run("two").history(samples=100, keys=["x", "y"])
    assert len(frame) <= 100
    assert frame["x"].max() == 9.0 and frame["y"].min() == -9.0
    assert list(frame.columns) == ["_step", "x", "y"]


def test_history_without_sampling_needs_is_every_row(store: Store, api: Api) -> None:
    _mixed_run(store)
    run = api.run("mixed")
    rows = run.history(samples=1000, pandas=False)
    assert rows == list(run.scan_history())
    assert run.history(samples=1000, keys=[], pandas=False) == rows  # an empty list means every key
    assert len(rows) == 100
    assert rows[0]["_step"] == 0 and rows[0]["c"] == "note 0" and rows[0]["b"] == 0
    assert "b" not in rows[1] and "c" not in rows[1]  # only the keys logged at that step
    assert set(rows[0]) == {"_step", "_runtime", "_timestamp", "a", "b", "c", "epoch"}


def test_history_dataframe_marks_missing_values_nan(store: Store, api: Api) -> None:
    _mixed_run(store)
    frame = api.run("mixed").history(samples=1000)
    assert frame.columns[0] == "_step"
    assert len(frame) == 100
    assert math.isnan(frame.loc[1, "b"]) and frame.loc[2, "b"] == 4
    assert frame.loc[10, "c"] == "note 10" and pd.isna(frame.loc[11, "c"])
    assert frame["epoch"].dtype == np.int64  # complete integer columns keep their type


def test_history_with_keys_returns_only_rows_holding_all_of_them(store: Store, api: Api) -> None:
    _mixed_run(store)
    run = api.run("mixed")
    rows = run.history(keys=["a", "b"], pandas=False)
    assert [r["_step"] for r in rows] == list(range(0, 100, 2))
    assert all(set(r) == {"_step", "a", "b"} for r in rows)
    rows = run.history(keys=["b", "c"], pandas=False)
    assert rows == [{"_step": s, "b": 2 * s, "c": f"note {s}"} for s in range(0, 100, 10)]
    assert run.history(keys=["a", "never-logged"], pandas=False) == []
    assert run.history(keys=["never-logged"]).empty


def test_history_x_axis_sorts_rows_and_replaces_step(store: Store, api: Api) -> None:
    _mixed_run(store)
    frame = api.run("mixed").history(keys=["b"], x_axis="epoch")
    assert list(frame.columns) == ["epoch", "b"]
    assert frame["epoch"].tolist() == sorted(frame["epoch"].tolist())
    assert frame["epoch"].iloc[0] == 1000 - 98 and frame["b"].iloc[0] == 196


def test_history_of_system_metrics(store: Store, api: Api) -> None:
    _mixed_run(store)
    run = api.run("mixed")
    rows = run.history(stream="system", pandas=False)
    assert [r["system.cpu"] for r in rows] == [float(i) for i in range(30)]  # wandb's names
    assert "a" not in rows[0]
    assert len(run.history(stream="system", samples=10)) <= 10
    with pytest.raises(UsageError, match="stream"):
        run.history(stream="gpu")


@pytest.mark.parametrize("keys", ["loss", [1, 2], 3])
def test_history_and_scan_reject_keys_that_are_not_a_list(store: Store, api: Api, keys: Any) -> None:
    add_run(store, run_id="r", history=[(0, {"loss": 1.0})])
    run = api.run("r")
    with pytest.raises(KeysError) as info:
        run.history(keys=keys)
    assert isinstance(info.value, ValueError)
    with pytest.raises(ValueError):
        run.scan_history(keys=keys)  # raised at the call, not on first iteration


def test_history_rejects_bad_samples(store: Store, api: Api) -> None:
    add_run(store, run_id="r", history=[(0, {"loss": 1.0})])
    with pytest.raises(UsageError, match="samples"):
        api.run("r").history(samples=0)


# -- scan_history ----------------------------------------------------------------------------------------


def test_scan_history_keys_and_exclusive_max_step(store: Store, api: Api) -> None:
    _mixed_run(store)
    run = api.run("mixed")
    rows = list(run.scan_history(keys=["a", "b"], min_step=10, max_step=20))
    assert rows == [{"a": float(s % 17), "b": 2 * s} for s in range(10, 20, 2)]  # 20 excluded
    assert [r["_step"] for r in run.scan_history(keys=["_step", "c"], max_step=30)] == [0, 10, 20]
    assert list(run.scan_history(keys=["c"], min_step=31, max_step=40)) == []
    # max_step past the end is clamped; min_step past the end yields nothing.
    assert len(list(run.scan_history(keys=["a"], min_step=90, max_step=10_000))) == 10
    assert list(run.scan_history(min_step=100)) == []
    assert list(run.scan_history(keys=["a", "never"])) == []
    every = list(run.scan_history())
    assert [r["_step"] for r in every] == list(range(100))


@pytest.mark.parametrize("page_size", [1, 7, 1000])
def test_scan_history_page_size_does_not_change_rows(store: Store, api: Api, page_size: int) -> None:
    _mixed_run(store)
    run = api.run("mixed")
    assert list(run.scan_history(page_size=page_size)) == list(run.scan_history(page_size=100_000))
    with pytest.raises(UsageError, match="page_size"):
        run.scan_history(page_size=0)


def test_scan_history_crosses_gaps_in_steps(store: Store, api: Api) -> None:
    steps = [0, 1, 2, 5000, 5001, 250_000]
    add_run(store, run_id="gappy", history=[(s, {"v": s}) for s in steps])
    run = api.run("gappy")
    assert [r["v"] for r in run.scan_history(keys=["v"], page_size=10)] == steps
    assert [r["v"] for r in run.scan_history(keys=["v"], min_step=3, max_step=250_000)] == [5000, 5001]


# -- metric ---------------------------------------------------------------------------------------------


def test_metric_is_the_full_series_as_numpy(store: Store, api: Api) -> None:
    _mixed_run(store)
    run = api.run("mixed")
    steps, values = run.metric("b")
    assert isinstance(steps, np.ndarray) and isinstance(values, np.ndarray)
    assert steps.tolist() == list(range(0, 100, 2)) and values.tolist() == [2 * s for s in range(0, 100, 2)]
    assert values.dtype == np.int64
    x, a = run.metric("a", x_axis="epoch")
    assert x.tolist() == [1000 - s for s in range(100)] and a.tolist() == [float(s % 17) for s in range(100)]
    x, b = run.metric("b", x_axis="epoch")
    assert len(x) == len(b) == 50
    steps, values = run.metric("never-logged")
    assert len(steps) == len(values) == 0
    with pytest.raises(UsageError, match="non-numeric"):
        run.metric("c")
    assert run.metric("cpu", stream="system")[1].tolist() == [float(i) for i in range(30)]


def test_metric_of_a_long_series_matches_what_was_written(store: Store, api: Api) -> None:
    view = add_run(store, run_id="long")
    steps = np.arange(0, 300_000, 3, dtype=np.int64)
    values = np.sin(steps / 1000.0)
    write_series(store, view.incarnation_id, "loss", steps, values)
    got_steps, got_values = api.run("long").metric("loss")
    assert np.array_equal(got_steps, steps) and np.array_equal(got_values, values)


# -- lineage ----------------------------------------------------------------------------------------------


def test_fork_history_follows_the_lineage(store: Store, api: Api) -> None:
    add_run(store, run_id="src", history=[(s, {"loss": float(s), "tag": f"s{s}"}) for s in range(10)])
    add_run(store, run_id="fork", fork_from="src", branch_step=4, history=[(s, {"loss": 100.0 + s}) for s in (5, 6)])
    fork = api.run("fork")
    assert fork.metric("loss")[1].tolist() == [0, 1, 2, 3, 4, 105, 106]
    assert [r["loss"] for r in fork.scan_history(keys=["loss"])] == [0, 1, 2, 3, 4, 105, 106]
    assert [r["tag"] for r in fork.scan_history(keys=["tag"])] == ["s0", "s1", "s2", "s3", "s4"]
    assert fork.history(keys=["loss"], samples=3, pandas=False)[-1] == {"_step": 6, "loss": 106.0}
    assert fork.last_step == 6
    assert [r["_step"] for r in fork.scan_history(keys=["_step", "loss"], min_step=3, max_step=6)] == [3, 4, 5]


# -- many runs at once --------------------------------------------------------------------------------------


def test_runs_histories(store: Store, api: Api) -> None:
    for i in range(3):
        add_run(
            store, run_id=f"r{i}", created_at=1000.0 + i, history=[(s, {"loss": float(i * 10 + s)}) for s in range(4)]
        )
    runs = api.runs("e/p", per_page=2)
    rows = runs.histories(samples=10, keys=["loss"])
    assert [(r["run_id"], r["_step"], r["loss"]) for r in rows][:5] == [
        ("r0", 0, 0.0),
        ("r0", 1, 1.0),
        ("r0", 2, 2.0),
        ("r0", 3, 3.0),
        ("r1", 0, 10.0),
    ]
    assert len(rows) == 12
    assert runs.histories(["loss"], 10) == rows  # (keys, samples) order works too
    frame = runs.histories(keys=["loss"], format="pandas")
    assert list(frame.columns) == ["run_id", "_step", "loss"] and len(frame) == 12
    assert frame.groupby("run_id")["loss"].max().to_dict() == {"r0": 3.0, "r1": 13.0, "r2": 23.0}
    with pytest.raises(UsageError, match="format"):
        runs.histories(format="polars")
