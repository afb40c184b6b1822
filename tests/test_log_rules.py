"""`run.log` step and commit rules (reference §2.1–§2.3), read back through `Api`.

Every test that logs runs in both backend modes: the embedded store and a real server (tests/backends.py).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import branchline
from branchline.api import Run as ApiRun
from tests.backends import Backend, history


def finished(backend: Backend, quiet: dict[str, Any], body: Any, **init: Any) -> ApiRun:
    """Log a run with `body`, finish it, and read it back through `Api`."""
    run = branchline.init(project="rules", settings=quiet, **init)
    body(run)
    run.finish()
    return backend.run(run.entity, "rules", run.id)


def test_plain_log_uses_consecutive_steps(backend: Backend, quiet: dict[str, Any]) -> None:
    stored = finished(backend, quiet, lambda r: [r.log({"a": i}) for i in range(5)])
    assert history(stored, "a") == {0: 0, 1: 1, 2: 2, 3: 3, 4: 4}


def test_commit_false_accumulates_into_one_row(backend: Backend, quiet: dict[str, Any]) -> None:
    def body(run: branchline.Run) -> None:
        run.log({"a": 1}, commit=False)
        run.log({"b": 2}, commit=False)
        run.log({"a": 3})  # later value of the same key wins, then the row commits
        run.log({"c": 4})

    stored = finished(backend, quiet, body)
    assert history(stored, "a") == {0: 3}
    assert history(stored, "b") == {0: 2}
    assert history(stored, "c") == {1: 4}


def test_explicit_step_does_not_commit_until_the_step_moves(backend: Backend, quiet: dict[str, Any]) -> None:
    seen: list[int] = []

    def body(run: branchline.Run) -> None:
        run.log({"a": 1}, step=5)
        seen.append(run.step)
        run.log({"b": 2}, step=5)  # same step: accumulates
        run.log({"a": 3}, step=7)  # moves: row 5 is emitted

    stored = finished(backend, quiet, body)
    assert seen == [5]
    assert history(stored, "a") == {5: 1, 7: 3}  # 7 flushed at finish
    assert history(stored, "b") == {5: 2}


def test_explicit_step_with_commit_true_emits_and_advances(backend: Backend, quiet: dict[str, Any]) -> None:
    def body(run: branchline.Run) -> None:
        run.log({"a": 1}, step=3, commit=True)
        assert run.step == 4
        run.log({"a": 99}, step=3)  # now lower than current: dropped
        run.log({"a": 2})

    stored = finished(backend, quiet, body)
    assert history(stored, "a") == {3: 1, 4: 2}


def test_lower_step_is_dropped_with_one_warning(
    backend: Backend, quiet: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    def body(run: branchline.Run) -> None:
        run.log({"a": 1}, step=10)
        run.log({"a": 2}, step=3)
        run.log({"a": 2}, step=3)

    stored = finished(backend, quiet, body)
    err = capsys.readouterr().err
    assert err.count("less than the current step") == 1
    assert history(stored, "a") == {10: 1}


def test_pending_row_then_explicit_step_flushes_old_row(backend: Backend, quiet: dict[str, Any]) -> None:
    def body(run: branchline.Run) -> None:
        run.log({"a": 1}, commit=False)
        run.log({"b": 2}, step=5)

    stored = finished(backend, quiet, body)
    assert history(stored, "a") == {0: 1}
    assert history(stored, "b") == {5: 2}


def test_empty_log_still_uses_a_step(backend: Backend, quiet: dict[str, Any]) -> None:
    def body(run: branchline.Run) -> None:
        run.log({})
        run.log({"a": 1})

    stored = finished(backend, quiet, body)
    assert history(stored, "a") == {1: 1}
    assert sorted(history(stored, "_timestamp")) == [0, 1]


def test_special_keys(backend: Backend, quiet: dict[str, Any]) -> None:
    def body(run: branchline.Run) -> None:
        run.log({"a": 1, "_step": 1000, "_runtime": -5.0})
        run.log({"a": 2, "_timestamp": 123.5})

    stored = finished(backend, quiet, body)
    assert history(stored, "a") == {0: 1, 1: 2}  # user _step discarded
    ts = history(stored, "_timestamp")
    assert ts[1] == 123.5 and ts[0] > 1e9  # user _timestamp kept, else time.time()
    runtime = history(stored, "_runtime")
    assert all(0 <= v < 60 for v in runtime.values())  # user _runtime overwritten


def test_nested_dicts_are_flattened_with_dots_and_summarised_nested(backend: Backend, quiet: dict[str, Any]) -> None:
    def body(run: branchline.Run) -> None:
        run.log({"b": {"c": 3, "d": {"e": 4}}})
        run.log({"b": {"f": 5}})
        assert run.summary["b"]["c"] == 3 and run.summary["b"]["f"] == 5

    stored = finished(backend, quiet, body)
    assert history(stored, "b.d.e") == {0: 4}
    assert stored.summary["b"] == {"c": 3, "d": {"e": 4}, "f": 5}


def test_value_types(backend: Backend, quiet: dict[str, Any]) -> None:
    def body(run: branchline.Run) -> None:
        run.log(
            {
                "np_float": np.float32(0.5),
                "np_int": np.int64(7),
                "np_bool": np.bool_(True),
                "nan": float("nan"),
                "inf": float("inf"),
                "text": "hello",
                "small": np.arange(4),
                "big": np.arange(100),
                "none": None,
                "lst": [1, 2, 3],
            }
        )

    stored = finished(backend, quiet, body)
    get = lambda key: history(stored, key)[0]  # noqa: E731
    assert get("np_float") == 0.5 and get("np_int") == 7 and get("np_bool") is True
    assert math.isnan(get("nan")) and get("inf") == math.inf
    assert get("text") == "hello" and get("small") == [0, 1, 2, 3] and get("lst") == [1, 2, 3]
    hist = get("big")
    assert hist["_type"] == "histogram" and len(hist["values"]) == 32 and len(hist["bins"]) == 33
    assert sum(hist["values"]) == 100
    assert get("none") is None


def test_torch_scalars_and_tensors(backend: Backend, quiet: dict[str, Any]) -> None:
    torch = pytest.importorskip("torch", reason="torch is optional; installed in CI from the local wheel")

    def body(run: branchline.Run) -> None:
        run.log({"t": torch.tensor(2.5), "v": torch.arange(40, dtype=torch.float32)})

    stored = finished(backend, quiet, body)
    assert history(stored, "t") == {0: 2.5}
    assert history(stored, "v")[0]["_type"] == "histogram"


def _nested(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(levels):
        node["x"] = {}
        node = node["x"]
    return root


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        ([1, 2], {}, "must be passed a dictionary"),
        ("text", {}, "must be passed a dictionary"),
        ({1: 2}, {}, "must be strings"),
        ({"a": 1}, {"step": 1.5}, "cannot be interpreted as an integer"),
        ({"a": 1}, {"step": "3"}, "cannot be interpreted as an integer"),
        ({"a": object()}, {}, "not loggable"),
        # What no store can hold: one such value used to fail every later batch of the run.
        ({"by": b"\xff\x00"}, {}, "bytes, which cannot be logged"),
        ({"by": [1, bytearray(b"x")]}, {}, "bytearray, which cannot be logged"),
        ({"deep": _nested(1000)}, {}, "nested more than 32 levels"),
        ({"a": {1: 2.0}}, {}, "non-string key"),
        ({"k" * 600: 1.0}, {}, "longer than 512"),
        ({"a": {"k" * 600: 1.0}}, {}, "longer than 512"),
    ],
    ids=[
        "list",
        "str",
        "int-key",
        "float-step",
        "str-step",
        "object",
        "bytes",
        "bytearray",
        "deep",
        "nested-int-key",
        "long-key",
        "long-nested-key",
    ],
)
def test_bad_input_raises_type_error_in_the_caller(
    backend: Backend, quiet: dict[str, Any], data: Any, kwargs: dict[str, Any], message: str
) -> None:
    run = branchline.init(project="rules", settings=quiet)
    run.log({"ok": 1})
    with pytest.raises(TypeError, match=message):
        run.log(data, **kwargs)
    run.log({"ok": 2})  # the run keeps working
    run.finish()
    assert history(backend.run(run.entity, "rules", run.id), "ok") == {0: 1, 1: 2}


def test_fast_path_keys_that_later_change_type_still_validate(backend: Backend, quiet: dict[str, Any]) -> None:
    run = branchline.init(project="rules", settings=quiet)
    for i in range(3):
        run.log({"a": float(i)})
    with pytest.raises(TypeError):
        run.log({"a": object()})
    run.log({"a": {"nested": 1}})
    run.finish()
    assert history(backend.run(run.entity, "rules", run.id), "a") == {0: 0.0, 1: 1.0, 2: 2.0}
    assert history(backend.run(run.entity, "rules", run.id), "a.nested") == {3: 1}


def test_log_after_finish_raises(backend: Backend, quiet: dict[str, Any]) -> None:
    run = branchline.init(project="rules", settings=quiet)
    run.log({"a": 1})
    run.finish()
    with pytest.raises(branchline.UsageError, match="is finished"):
        run.log({"a": 2})
    with pytest.raises(branchline.UsageError, match="is finished"):
        run.log({})


def test_module_level_log_before_init_raises() -> None:
    assert branchline.run is None
    with pytest.raises(branchline.Error, match=r"call branchline.init\(\) before branchline.log"):
        branchline.log({"a": 1})
