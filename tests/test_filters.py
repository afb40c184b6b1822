"""Run filters and ordering compiled to SQL, checked against a Python reference on ~60 generated runs.

Every operator meets every field kind on SQLite and PostgreSQL; the database evaluates the filter, and
this module evaluates the same filter in plain Python over all runs: both must pick the same runs.
"""

from __future__ import annotations

import operator
import os
import random
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

import branchline
from branchline.api import Api
from branchline.errors import UsageError
from branchline.store.reads import RunView
from branchline.store.store import Store, open_store
from tests.store_factory import add_run, pg_available, pg_schema_url

ENTITY, PROJECT = "e", "filters"
BASE_TIME = 1_700_000_000.0
N_RUNS = 60

MISSING = object()


# -- the generated runs ----------------------------------------------------------------------------


def _generate(store: Store) -> None:
    rng = random.Random(20261122)
    hours = list(range(N_RUNS))
    rng.shuffle(hours)  # creation order differs from insertion (pk) order
    for i in range(N_RUNS):
        config: dict[str, Any] = {}
        lr = rng.choice([0.1, 0.01, 0.001, 1, 3, 0.01, "auto", None, True, MISSING])
        if lr is not MISSING:
            config["lr"] = lr
        opt = rng.choice(["adam", "sgd", "Adam", "adamw", MISSING])
        if opt is not MISSING:
            config["opt"] = opt
        if rng.random() < 0.7:
            config["model"] = {"layers": rng.choice([2, 4, 8, 16]), "act": rng.choice(["relu", "gelu"])}
        flag = rng.choice([True, False, MISSING])
        if flag is not MISSING:
            config["flag"] = flag
        widths = rng.choice([[64, 64], [32], [], MISSING])
        if widths is not MISSING:
            config["widths"] = widths
        warm = rng.choice([{"value": 5}, {"value": 10}, 7, MISSING])
        if warm is not MISSING:
            config["warm"] = warm  # wandb-style {"value": v} wrapping, or a bare value
        summary: dict[str, Any] = {}
        loss = rng.choice([round(rng.uniform(0, 2), 4), 0.5, 1, "diverged", MISSING])
        if loss is not MISSING:
            summary["loss"] = loss
        if rng.random() < 0.8:
            summary["acc.top1"] = rng.choice([0.25, 0.5, 0.75, 0.9])
        if rng.random() < 0.5:
            summary["best"] = rng.random() < 0.5
        state = rng.choice(["finished", "finished", "failed", "crashed", "killed", "running"])
        add_run(
            store,
            entity=ENTITY,
            project=PROJECT,
            run_id=f"r{i:02d}",
            name=[f"alpha-{i}", f"beta-{i}", f"Gamma-{i}", f"delta_{i}"][i % 4],
            notes=rng.choice(["", "baseline run", "try again"]),
            tags=rng.sample(["baseline", "sweep", "gpu", "Z-last", "a b"], rng.randint(0, 3)),
            group=rng.choice(["", "g1", "g2"]),
            job_type=rng.choice(["", "train", "eval"]),
            host=rng.choice(["node-a", "node-b", "node-c"]),
            username=rng.choice(["ann", "bob"]),
            config=config,
            history=[(step, {"x": step}) for step in range(rng.randint(0, 4))],
            summary=summary,
            state=state,
            created_at=BASE_TIME + hours[i] * 3600,
        )


def _backends() -> list[Any]:
    return ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=_backends())
def populated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A store URL holding the generated runs (built once per backend)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('filters') / 'store.db'}"
        store = open_store(url)
        _generate(store)
        store.close()
        yield url
        return
    if not pg_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    with pg_schema_url("bl_filters") as url:
        store = open_store(url)
        _generate(store)
        store.close()
        yield url


@pytest.fixture(scope="module")
def api(populated: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One Api per backend for the whole module, built with no settings leaking in from the machine."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("BRANCHLINE_", "WANDB_")):
                patch.delenv(name)
        patch.setenv("BRANCHLINE_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))
        api = Api(overrides={"store_url": populated})
    with api:
        yield api


@pytest.fixture(scope="module")
def all_runs(api: Api) -> list[RunView]:
    views = api.backend.list_runs(ENTITY, PROJECT)
    assert len(views) == N_RUNS
    return views


# -- the reference evaluation --------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _get(doc: Any, keys: list[str]) -> Any:
    for key in keys:
        if not isinstance(doc, dict) or key not in doc:
            return MISSING
        doc = doc[key]
    return doc


def _json_value(view: RunView, field: str) -> Any:
    prefix, _, rest = field.partition(".")
    doc = view.config if prefix == "config" else view.summary
    keys = rest.split(".")
    if prefix == "config" and len(keys) > 1 and keys[-1] == "value":
        wrapped = _get(doc, keys)
        return wrapped if wrapped is not MISSING else _get(doc, keys[:-1])
    return _get(doc, keys)


_TEXT = {
    "state": "state",
    "display_name": "name",
    "displayName": "name",
    "name": "run_id",
    "group": "group",
    "jobType": "job_type",
    "host": "host",
    "username": "username",
    "notes": "notes",
}
_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}


def _epoch(value: Any) -> float:
    if isinstance(value, str):
        moment = datetime.fromisoformat(value)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return float(value)


def _json_eq(value: Any, query: Any) -> bool:
    if query is None:
        return value is MISSING or value is None
    if isinstance(query, bool):
        return isinstance(value, bool) and value == query
    if _is_number(query):
        return _is_number(value) and value == query
    if isinstance(query, str):
        return isinstance(value, str) and value == query
    return type(value) is type(query) and value == query


def _json_test(value: Any, op: str, query: Any) -> bool:
    if op == "$eq":
        return _json_eq(value, query)
    if op == "$ne":
        return not _json_eq(value, query)
    if op in _CMP:
        if _is_number(query):
            return _is_number(value) and _CMP[op](value, query)
        return isinstance(value, str) and _CMP[op](value, query)
    if op == "$in":
        return any(_json_eq(value, q) for q in query)
    if op == "$nin":
        return not any(_json_eq(value, q) for q in query)
    if op == "$exists":
        return (value is not MISSING) == query
    if op == "$regex":
        return isinstance(value, str) and re.search(query, value) is not None
    raise AssertionError(op)


def _scalar_test(value: Any, op: str, query: Any, convert: Callable[[Any], Any]) -> bool:
    if op == "$eq":
        return bool(value == convert(query))
    if op == "$ne":
        return bool(value != convert(query))
    if op in _CMP:
        return _CMP[op](value, convert(query))
    if op == "$in":
        return value in [convert(q) for q in query]
    if op == "$nin":
        return value not in [convert(q) for q in query]
    if op == "$exists":
        present = value != "" if isinstance(value, str) else True
        return present == query
    if op == "$regex":
        return re.search(query, value) is not None
    raise AssertionError(op)


def _tags_test(tags: list[str], op: str, query: Any) -> bool:
    if op == "$eq":
        return query in tags
    if op == "$ne":
        return query not in tags
    if op in _CMP:
        return any(_CMP[op](tag, query) for tag in tags)
    if op == "$in":
        return any(tag in query for tag in tags)
    if op == "$nin":
        return not any(tag in query for tag in tags)
    if op == "$exists":
        return bool(tags) == query
    if op == "$regex":
        return any(re.search(query, tag) for tag in tags)
    raise AssertionError(op)


def _field_test(view: RunView, field: str, op: str, query: Any) -> bool:
    if field in _TEXT:
        return _scalar_test(getattr(view, _TEXT[field]), op, query, lambda q: "" if q is None else q)
    if field in ("createdAt", "created_at"):
        return _scalar_test(view.created_at, op, query, _epoch)
    if field in ("heartbeatAt", "heartbeat_at"):
        return _scalar_test(view.heartbeat_at, op, query, _epoch)
    if field == "duration":
        return _scalar_test(view.duration, op, query, float)
    if field == "tags":
        return _tags_test(view.tags, op, query)
    return _json_test(_json_value(view, field), op, query)


def reference(view: RunView, filters: dict[str, Any]) -> bool:
    for key, value in filters.items():
        if key == "$and":
            ok = all(reference(view, part) for part in value)
        elif key == "$or":
            ok = any(reference(view, part) for part in value)
        elif key == "$nor":
            ok = not any(reference(view, part) for part in value)
        elif isinstance(value, dict) and all(k.startswith("$") for k in value):
            ok = all(_field_test(view, key, op, query) for op, query in value.items())
        else:
            ok = _field_test(view, key, "$eq", value)
        if not ok:
            return False
    return True


# -- the cases -------------------------------------------------------------------------------------


def _iso(hours: float) -> str:
    return datetime.fromtimestamp(BASE_TIME + hours * 3600, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _operator_cases() -> list[dict[str, Any]]:
    """Every operator on every field, with operands of the types that field holds."""
    operands: dict[str, list[Any]] = {
        "state": ["finished", "failed", "killed", "^(f|k)"],
        "display_name": ["beta-13", "alpha-40", "delta_7", r"^(alpha|Gamma)-\d$"],
        "displayName": ["Gamma-2", "beta-5", "delta_39", "_1"],
        "name": ["r07", "r30", "r45", r"^r[0-2]"],
        "group": ["g1", "", "g2", "1$"],
        "jobType": ["train", "eval", "train", "^tr"],
        "host": ["node-b", "node-b", "node-c", "b$"],
        "username": ["ann", "amz", "bob", "^a"],
        "notes": ["baseline run", "c", "try again", "again"],
        "tags": ["gpu", "b", "sweep", "^[A-Z]"],
        "createdAt": [_iso(20), _iso(10), _iso(40)],
        "created_at": [_iso(5), _iso(30), BASE_TIME + 50 * 3600],
        "duration": [0.02, 0.015, 0.035],
        "config.lr": [0.01, 0.05, 3, "^a"],
        "config.opt": ["adam", "B", "sgd", "^adam"],
        "config.model.layers": [8, 4, 16],
        "config.model.act": ["relu", "h", "relu", "lu$"],
        "config.flag": [True, False, True],
        "config.warm.value": [5, 7, 10],
        "config.warm": [7, 5, 10],
        "summary_metrics.loss": [0.5, 1, 1.2, "^div"],
        "summary_metrics.acc.top1": [0.5, 0.25, 0.75],
        "summary_metrics.best": [True, False, True],
    }
    cases: list[dict[str, Any]] = []
    for field, (first, second, third, *rest) in operands.items():
        cases.append({field: first})  # plain value: $eq
        cases.append({field: {"$eq": second}})
        cases.append({field: {"$ne": first}})
        if not isinstance(first, bool):
            for op in ("$gt", "$gte", "$lt", "$lte"):
                cases.append({field: {op: second}})
            cases.append({field: {"$gt": second, "$lte": third}})
        cases.append({field: {"$in": [first, third]}})
        cases.append({field: {"$in": []}})
        cases.append({field: {"$nin": [first, second]}})
        cases.append({field: {"$exists": True}})
        cases.append({field: {"$exists": False}})
        if rest:
            cases.append({field: {"$regex": rest[0]}})
    return cases


LOGICAL_CASES: list[dict[str, Any]] = [
    {"config.lr": None},
    {"config.lr": {"$ne": None}},
    {"config.lr": {"$in": [None, 0.1]}},
    {"config.lr": {"$nin": [None, "auto"]}},
    {"config.lr": True},
    {"config.lr": "auto"},
    {"config.lr": {"$gt": 1, "$lte": "auto"}},
    {"config.lr": {"$gte": 0.01, "$lt": 2}},
    {"config.widths": [64, 64]},
    {"config.widths": []},
    {"config.widths": {"$ne": [32]}},
    {"config.model": {"$exists": False}},
    {"config.nothing.here": {"$exists": False}},
    {"summary_metrics.loss": {"$exists": True}, "state": "finished"},
    {"$and": [{"state": {"$in": ["finished", "failed"]}}, {"config.opt": "adam"}]},
    {"$or": [{"config.lr": 0.1}, {"config.lr": 0.01}]},
    {"$nor": [{"state": "finished"}, {"tags": "gpu"}]},
    {"$or": [{"$and": [{"group": "g1"}, {"jobType": "train"}]}, {"$nor": [{"config.flag": {"$exists": True}}]}]},
    {"$and": [{"$or": [{"tags": "sweep"}, {"tags": "gpu"}]}, {"summary_metrics.loss": {"$lt": 1}}]},
    {"tags": {"$in": ["gpu", "Z-last"]}, "config.model.layers": {"$gte": 8}},
    {"tags": {"$nin": ["gpu", "sweep"], "$exists": True}},
    {"display_name": {"$regex": "(?i)^GAMMA"}},
    {"createdAt": {"$gte": "2023-11-15T00:00:00Z"}},
    {"heartbeatAt": {"$gt": "2020-01-01T00:00:00"}},
    {"heartbeat_at": {"$lt": "2020-01-01"}},
]

CASES = _operator_cases() + LOGICAL_CASES


def test_cases_are_not_trivial(api: Api, all_runs: list[RunView]) -> None:
    """The generated data makes most cases select some but not all runs."""
    sizes = [sum(reference(view, case) for view in all_runs) for case in CASES]
    interesting = sum(0 < size < N_RUNS for size in sizes)
    assert interesting >= 0.7 * len(CASES)
    assert len(CASES) > 300


@pytest.mark.parametrize("case", CASES, ids=[repr(c) for c in CASES])
def test_filter_matches_reference(api: Api, all_runs: list[RunView], case: dict[str, Any]) -> None:
    expected = sorted(view.run_id for view in all_runs if reference(view, case))
    found = api.runs(f"{ENTITY}/{PROJECT}", filters=case, per_page=100)
    assert sorted(run.id for run in found) == expected
    assert len(found) == len(expected)


# -- ordering ------------------------------------------------------------------------------------


def _rank(value: Any) -> tuple[int, Any, str]:
    if _is_number(value):
        return (0, value, "")
    if isinstance(value, str):
        return (1, 0, value)
    if isinstance(value, bool):
        return (2, int(value), "")
    raise AssertionError(f"unexpected value in an ordered key: {value!r}")


def _reference_order(views: list[RunView], key: str, descending: bool) -> list[str]:
    scalar = {
        "created_at": lambda v: v.created_at,
        "createdAt": lambda v: v.created_at,
        "heartbeat_at": lambda v: v.heartbeat_at,
        "duration": lambda v: v.duration,
        "display_name": lambda v: v.name,
        "name": lambda v: v.run_id,
        "state": lambda v: v.state,
    }
    if key in scalar:
        ordered = sorted(views, key=lambda v: (scalar[key](v), v.pk), reverse=descending)
        return [v.run_id for v in ordered]
    present = [v for v in views if _json_value(v, key) not in (MISSING, None)]
    absent = [v for v in views if _json_value(v, key) in (MISSING, None)]
    present.sort(key=lambda v: (*_rank(_json_value(v, key)), v.pk), reverse=descending)
    absent.sort(key=lambda v: v.pk, reverse=descending)
    return [v.run_id for v in present + absent]


ORDER_KEYS = [
    "created_at",
    "createdAt",
    "heartbeat_at",
    "duration",
    "display_name",
    "name",
    "state",
    "config.lr",
    "config.opt",
    "config.model.layers",
    "config.flag",
    "config.warm.value",
    "summary_metrics.loss",
    "summary_metrics.acc.top1",
    "summary_metrics.best",
]


@pytest.mark.parametrize("direction", ["+", "-", ""])
@pytest.mark.parametrize("key", ORDER_KEYS)
def test_order_matches_reference(api: Api, all_runs: list[RunView], key: str, direction: str) -> None:
    expected = _reference_order(all_runs, key, descending=direction == "-")
    found = [run.id for run in api.runs(f"{ENTITY}/{PROJECT}", order=f"{direction}{key}", per_page=13)]
    assert found == expected


def test_default_order_is_oldest_first(api: Api, all_runs: list[RunView]) -> None:
    ids = [run.id for run in api.runs(f"{ENTITY}/{PROJECT}")]
    assert ids == [v.run_id for v in sorted(all_runs, key=lambda v: v.created_at)]
    assert ids != sorted(ids)  # creation order is not the insertion order here


def test_filter_and_order_together(api: Api, all_runs: list[RunView]) -> None:
    case = {"summary_metrics.loss": {"$lt": 1.5}, "state": {"$ne": "running"}}
    expected = [v for v in all_runs if reference(v, case)]
    found = [run.id for run in api.runs(f"{ENTITY}/{PROJECT}", filters=case, order="-summary_metrics.loss")]
    assert found == _reference_order(expected, "summary_metrics.loss", descending=True)


# -- pagination ----------------------------------------------------------------------------------


@pytest.mark.parametrize("per_page", [1, 7, 20, 59, 60, 100])
def test_pagination_fetches_lazily_and_completely(api: Api, all_runs: list[RunView], per_page: int) -> None:
    calls: list[tuple[int | None, int]] = []
    backend = api.backend
    original = backend.list_runs

    def spy(*args: Any, **kwargs: Any) -> list[RunView]:
        calls.append((kwargs.get("limit"), kwargs.get("offset", 0)))
        return original(*args, **kwargs)

    backend.list_runs = spy  # type: ignore[method-assign]
    try:
        runs = api.runs(f"{ENTITY}/{PROJECT}", order="-created_at", per_page=per_page)
        assert calls == []  # nothing fetched until asked
        assert len(runs) == N_RUNS
        first = runs[0]
        assert len(calls) == 1
        ids = [run.id for run in runs]
        assert first.id == ids[0]
    finally:
        backend.list_runs = original  # type: ignore[method-assign]
    expected = [v.run_id for v in sorted(all_runs, key=lambda v: (v.created_at, v.pk), reverse=True)]
    assert ids == expected
    assert len(set(ids)) == N_RUNS
    pages = -(-N_RUNS // per_page) + (1 if N_RUNS % per_page == 0 else 0)
    assert len(calls) == pages
    assert [offset for _, offset in calls] == [i * per_page for i in range(pages)]
    assert [r.id for r in runs[5:9]] == expected[5:9]
    assert runs[-1].id == expected[-1]


def test_pagination_with_filter_smaller_than_page_count(api: Api, all_runs: list[RunView]) -> None:
    case = {"state": "finished"}
    expected = [v.run_id for v in sorted(all_runs, key=lambda v: (v.created_at, v.pk)) if reference(v, case)]
    assert len(expected) > 6
    runs = api.runs(f"{ENTITY}/{PROJECT}", filters=case, per_page=3)
    assert len(runs) == len(expected)
    assert [r.id for r in runs] == expected
    with pytest.raises(IndexError):
        runs[len(expected)]


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "named"),
    [
        ({"colour": "red"}, "'colour'"),
        ({"configs.lr": 1}, "'configs.lr'"),
        ({"config": 1}, "'config'"),
        ({"state": {"$like": "fin%"}}, "'$like'"),
        ({"$xor": [{"state": "finished"}]}, "'$xor'"),
        ({"$or": {"state": "finished"}}, "$or"),
        ({"$and": []}, "$and"),
        ({"state": {"$in": "finished"}}, "$in"),
        ({"tags": {"$exists": "yes"}}, "$exists"),
        ({"config.lr": {"$regex": 1}}, "$regex"),
        ({"config.lr": {"$gt": None}}, "$gt"),
        ({"config.lr": {"$gt": [1]}}, "$gt"),
        ({"createdAt": {"$gt": "last tuesday"}}, "'last tuesday'"),
        ({"createdAt": {"$regex": "^2"}}, "'createdAt'"),
        ({"duration": {"$gt": "long"}}, "'duration'"),
        ({"state": {"$gt": 3}}, "$gt"),
        ({"config.lr": {"$gt": 1, "x": 2}}, "mixes"),
        ({"config.lr": {"$and": [{"$gt": 1}]}}, "$and"),
        ({"config..lr": 1}, "empty key"),
        ("state=finished", "dict"),
    ],
)
def test_bad_filters_are_named(api: Api, filters: Any, named: str) -> None:
    with pytest.raises(UsageError) as info:
        api.runs(f"{ENTITY}/{PROJECT}", filters=filters)
    assert named in str(info.value)


@pytest.mark.parametrize("order", ["+colour", "-", "config", "summary_metrics", "tags"])
def test_bad_order_is_named(api: Api, order: str) -> None:
    with pytest.raises(UsageError) as info:
        api.runs(f"{ENTITY}/{PROJECT}", order=order)
    assert order.strip("+-") in str(info.value) or "order" in str(info.value)


def test_filters_run_in_sql_not_python(api: Api) -> None:
    """The filter becomes part of the statement; the store returns only matching rows."""
    from sqlalchemy.dialects import postgresql, sqlite

    from branchline.store.filters import compile_filter

    clause = compile_filter({"config.lr": {"$gt": 0.01}, "tags": "gpu"}, "sqlite")
    sql = str(clause.compile(dialect=sqlite.dialect()))
    assert "json_extract" in sql and "json_each" in sql
    clause = compile_filter({"config.lr": {"$gt": 0.01}, "tags": "gpu"}, "postgresql")
    sql = str(clause.compile(dialect=postgresql.dialect()))
    assert "#>" in sql and "jsonb_typeof" in sql and "?" in sql


def test_branchline_exports_api() -> None:
    assert branchline.Api is Api
