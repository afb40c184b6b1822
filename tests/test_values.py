"""`sdk/values.normalize`: numpy, torch and other subclass scalars anywhere in a logged value."""

from __future__ import annotations

import enum
from typing import Any

import numpy as np
import pytest

import branchline
from branchline.sdk.values import normalize
from tests.backends import Backend, history


class Level(enum.IntEnum):
    LOW = 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.float64(2.5), 2.5),
        (np.float32(1.5), 1.5),
        (np.int64(3), 3),
        (np.bool_(True), True),
        (np.str_("s"), "s"),
        (Level.LOW, 1),
        ({"a": np.float64(1.0), "b": [np.float64(2.0), np.int32(3)]}, {"a": 1.0, "b": [2.0, 3]}),
        ([{"x": (np.float64(0.5),)}], [{"x": [0.5]}]),
    ],
)
def test_normalize_turns_scalar_subclasses_into_builtins(value: Any, expected: Any) -> None:
    got = normalize(value)
    assert got == expected
    assert type(got) is type(expected)


def test_numpy_scalars_nested_in_log_config_and_summary(backend: Backend, quiet: dict[str, Any]) -> None:
    config = {"betas": [np.float64(0.9), np.float32(0.5)], "opt": {"lr": np.float64(0.1)}}
    run = branchline.init(project="values", config=config, settings=quiet)
    run.log({"d": {"a": np.float32(1.0), "b": np.float64(2.0)}, "e": [np.float64(3.0)]})
    run.summary["best"] = {"acc": np.float64(0.75), "at": [np.int64(4)]}
    assert run.summary["d"]["b"] == 2.0 and run.summary["best"]["acc"] == 0.75
    run.finish()
    api_run = backend.run(run.entity, "values", run.id)
    assert api_run.config["betas"] == [0.9, 0.5] and api_run.config["opt"] == {"lr": 0.1}
    assert history(api_run, "d.b") == {0: 2.0} and history(api_run, "e") == {0: [3.0]}
    assert api_run.summary["best"] == {"acc": 0.75, "at": [4]}
