"""Chart overviews of long series read from the chunks' sketches: every extreme kept, only real points."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from branchline.server import series
from branchline.store import Store, open_store
from branchline.store import history as hist
from tests import store_factory
from tests.store_factory import add_run, write_series

any_store_url = store_factory.any_store_url


@pytest.fixture
def store(any_store_url: str) -> Iterator[Store]:
    with open_store(any_store_url) as s:
        yield s


def chart_series(store: Store, incarnation_id: str, key: str, **options: Any) -> dict[str, Any]:
    """One run's chart series of one key, as the server sends it."""
    (found,) = series.chart_series(store, [incarnation_id], [key], **options)
    return found


def _points(series: dict[str, Any]) -> list[tuple[float, float | None]]:
    return list(zip(series["x"], series["y"], strict=True))


def _assert_real_points(series: dict[str, Any], steps: npt.NDArray[np.int64], values: npt.NDArray[Any]) -> None:
    by_step = dict(zip(steps.tolist(), values.tolist(), strict=True))
    for x, y in _points(series):
        assert x in by_step, f"step {x} was never logged"
        logged = by_step[x]
        assert (y is None and np.isnan(logged)) or y == logged, (x, y, logged)


def test_a_long_series_is_drawn_from_sketches_with_every_block_extreme(store: Store) -> None:
    n = 100_000
    rng = np.random.default_rng(7)
    steps = np.arange(n, dtype=np.int64)
    values = np.cumsum(rng.standard_normal(n))
    values[rng.choice(n, 300, replace=False)] = np.nan
    values[43_210] = 1e6  # a spike
    values[77_777] = -1e6  # a dip
    view = add_run(store, history=[(0, {"loss": 0.0})])
    write_series(store, view.incarnation_id, "loss", steps, values)

    overview = store.read_series_overviews([view.incarnation_id], "loss", points=500)[view.incarnation_id]
    got, got_values, count, sketched = overview.steps, overview.values, overview.count, overview.sketched
    assert len(got_values) == len(got)
    assert sketched and count == n
    assert len(got) < n // 10, "a sketch reads a few points per block, not every point"
    assert bool(np.all(np.diff(got) > 0))

    series = chart_series(store, view.incarnation_id, "loss", buckets=500)
    assert series["count"] == n and series["sampled"] is True
    assert len(series["x"]) <= 2 * 500 + 2
    assert series["x"] == sorted(set(series["x"]))
    assert series["x"][0] == 0.0 and series["x"][-1] == float(n - 1)
    _assert_real_points(series, steps, values)
    ys = [y for y in series["y"] if y is not None]
    assert max(ys) == 1e6 and min(ys) == -1e6

    # Every bucket that holds whole blocks keeps their extremes: its drawn max and min are the
    # max and min of those blocks (a block straddling two buckets may lend its extreme to either).
    xs = np.array(series["x"])
    ys_all = np.array([np.nan if y is None else y for y in series["y"]])
    block = hist.SKETCH_BLOCK
    edges = (np.arange(501) * n) // 500
    for b in range(500):
        lo, hi = edges[b], edges[b + 1]
        inner = values[-(-lo // block) * block : (hi // block) * block]
        if not len(inner) or np.all(np.isnan(inner)):
            continue
        drawn = ys_all[(xs >= lo) & (xs < hi)]
        assert np.nanmax(drawn) >= np.nanmax(inner) and np.nanmin(drawn) <= np.nanmin(inner), b


def test_steps_with_gaps_map_sketch_positions_to_the_logged_steps(store: Store) -> None:
    n = 40_000
    steps = np.cumsum(np.random.default_rng(3).integers(1, 5, n)).astype(np.int64)
    values = np.sin(np.arange(n) / 500.0)
    values[12_345] = 9.0
    view = add_run(store, history=[(0, {"x": 0.0})])
    write_series(store, view.incarnation_id, "x", steps, values)
    series = chart_series(store, view.incarnation_id, "x", buckets=100)
    assert series["count"] == n and series["sampled"]
    _assert_real_points(series, steps, values)
    assert series["x"][series["y"].index(9.0)] == float(steps[12_345])


def test_a_short_series_is_read_whole(store: Store) -> None:
    n = 5_000
    view = add_run(store, history=[(0, {"loss": 0.0})])
    values = np.linspace(1.0, 0.0, n)
    write_series(store, view.incarnation_id, "loss", np.arange(n, dtype=np.int64), values)
    short = store.read_series_overviews([view.incarnation_id], "loss", points=500)[view.incarnation_id]
    steps, got, count, sketched = short.steps, short.values, short.count, short.sketched
    assert not sketched and count == n
    assert steps.tolist() == list(range(n)) and got.tolist() == values.tolist()


def test_a_step_range_keeps_only_its_points(store: Store) -> None:
    n = 60_000
    steps = np.arange(n, dtype=np.int64)
    values = np.cos(steps / 900.0)
    values[30_001] = 5.0
    values[2_000] = 7.0  # outside the range: must not be drawn
    view = add_run(store, history=[(0, {"loss": 0.0})])
    write_series(store, view.incarnation_id, "loss", steps, values)
    series = chart_series(store, view.incarnation_id, "loss", buckets=20, min_step=10_000, max_step=49_999)
    assert series["count"] == 40_000 and series["sampled"]
    assert min(series["x"]) == 10_000.0 and max(series["x"]) == 49_999.0
    assert 5.0 in series["y"] and 7.0 not in series["y"]
    _assert_real_points(series, steps, values)


def test_a_fork_reads_its_parent_up_to_the_branch_step_then_its_own_points(store: Store) -> None:
    parent = add_run(store, run_id="base", history=[(s, {"loss": float(s)}) for s in range(9_000)])
    child = add_run(
        store,
        run_id="branch",
        fork_from="base",
        branch_step=6_000,
        history=[(s, {"loss": -float(s)}) for s in range(6_001, 12_000)],
    )
    assert parent.incarnation_id != child.incarnation_id
    fork = store.read_series_overviews([child.incarnation_id], "loss", points=10)[child.incarnation_id]
    steps, values, count, sketched = fork.steps, fork.values, fork.count, fork.sketched
    assert sketched and count == 12_000
    assert bool(np.all(np.diff(steps) > 0))
    assert all(v == (s if s <= 6_000 else -s) for s, v in zip(steps.tolist(), values.tolist(), strict=True))
    series = chart_series(store, child.incarnation_id, "loss", buckets=10)
    assert max(series["y"]) == 6_000.0 and min(series["y"]) == -11_999.0


def test_bucket_extremes_splits_the_step_range_evenly() -> None:
    steps = np.array([0, 1, 2, 3, 50, 98, 99], dtype=np.int64)
    values = np.array([5.0, 1.0, np.nan, 3.0, 9.0, -2.0, 4.0])
    # Two buckets: steps 0–49 and 50–99.
    picked = hist.bucket_extremes(steps, values, 2)
    assert picked.tolist() == [0, 1, 4, 5, 6]
    assert hist.bucket_extremes(steps, values, 10).tolist() == list(range(7))  # few points: all kept


def test_one_read_of_many_runs_equals_reading_each_run_alone(store: Store) -> None:
    base = add_run(store, run_id="base", history=[(s, {"loss": float(s % 97)}) for s in range(7_000)])
    fork = add_run(
        store,
        run_id="fork",
        fork_from="base",
        branch_step=3_000,
        history=[(s, {"loss": -float(s % 89)}) for s in range(3_001, 9_000)],
    )
    short = add_run(store, run_id="short", history=[(s, {"loss": 1.0 / (s + 1)}) for s in range(300)])
    empty = add_run(store, run_id="empty", history=[(0, {"other": 1.0})])
    ids = [fork.incarnation_id, base.incarnation_id, short.incarnation_id, empty.incarnation_id]
    for points, lo, hi in ((10, None, None), (10, 2_500, 6_000), (500, None, None)):
        together = store.read_series_overviews(ids, "loss", points=points, min_step=lo, max_step=hi)
        for inc_id in ids:
            alone = store.read_series_overviews([inc_id], "loss", points=points, min_step=lo, max_step=hi)[inc_id]
            both = together[inc_id]
            assert both.steps.tolist() == alone.steps.tolist() and both.values.tolist() == alone.values.tolist()
            assert (both.count, both.sketched) == (alone.count, alone.sketched)
            if not alone.sketched:  # read whole: exactly the run's points in range
                steps, values = store.read_series(inc_id, "loss", min_step=lo, max_step=hi)
                assert alone.steps.tolist() == steps.tolist() and alone.values.tolist() == values.tolist()
    assert together[empty.incarnation_id].count == 0
    assert store.read_series_overviews(ids, "loss", points=10)[fork.incarnation_id].sketched
