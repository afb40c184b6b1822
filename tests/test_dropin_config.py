"""`config=` from the objects scripts keep hyperparameters in, with values wandb stores as text."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import types
from pathlib import Path

import pytest

import branchline

QUIET = {"quiet": True, "x_disable_stats": True, "console": "off"}


class Optim(enum.Enum):
    ADAM = "adam"
    SGD = 2


@dataclasses.dataclass
class Inner:
    width: int = 64
    act: Optim = Optim.SGD


@dataclasses.dataclass
class TrainConfig:
    lr: float = 1e-3
    out: Path = Path("/tmp/out")
    inner: Inner = dataclasses.field(default_factory=Inner)
    ns: types.SimpleNamespace = dataclasses.field(default_factory=lambda: types.SimpleNamespace(a=1, b=[1, 2]))


def _stored(run: branchline.Run) -> dict[str, object]:
    run.finish()
    return branchline.Api(overrides={"root_dir": "."}).run(run.path).config


def test_a_dataclass_with_nested_objects_and_text_values() -> None:
    run = branchline.init(project="p", config=TrainConfig(), settings=QUIET)
    assert run.config.lr == 1e-3 and run.config.out == "/tmp/out"
    assert _stored(run) == {
        "lr": 1e-3,
        "out": "/tmp/out",
        "inner": {"width": 64, "act": "SGD"},
        "ns": {"a": 1, "b": [1, 2]},
    }


def test_simplenamespace_pydantic_and_omegaconf() -> None:
    pydantic = pytest.importorskip("pydantic")
    omegaconf = pytest.importorskip("omegaconf")

    class Model(pydantic.BaseModel):
        depth: int = 3
        mode: Optim = Optim.ADAM

    run = branchline.init(
        project="p", config=types.SimpleNamespace(seed=1, sub=types.SimpleNamespace(x=2)), settings=QUIET
    )
    run.config.update(Model())
    cfg = omegaconf.OmegaConf.create({"data": {"root": "/d", "size": "${model.width}"}, "model": {"width": 8}})
    run.config.update(cfg)
    run.config.update(argparse.Namespace(batch=32))
    assert _stored(run) == {
        "seed": 1,
        "sub": {"x": 2},
        "depth": 3,
        "mode": "ADAM",
        "data": {"root": "/d", "size": 8},
        "model": {"width": 8},
        "batch": 32,
    }


def test_values_wandb_keeps_as_text() -> None:
    torch = pytest.importorskip("torch")
    run = branchline.init(
        project="p",
        config={
            "device": torch.device("cpu"),
            "dtype": torch.float16,
            "z": 1 + 2j,
            "path": Path("a/b"),
            "opt": Optim.ADAM,
            "window": slice(1, 5),
            "obj": object,
        },
        settings=QUIET,
    )
    stored = _stored(run)
    assert stored["device"] == "cpu" and stored["dtype"] == "torch.float16" and stored["z"] == "(1+2j)"
    assert stored["path"] == "a/b" and stored["opt"] == "ADAM"
    assert stored["window"] == {"slice_start": 1, "slice_step": None, "slice_stop": 5}
    assert isinstance(stored["obj"], str)


def test_a_value_without_attributes_is_still_refused() -> None:
    with pytest.raises(branchline.UsageError, match="config must be a dict"):
        branchline.init(project="p", config=42, settings=QUIET)
