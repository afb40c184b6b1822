"""Summary (§3), config (§4) and define_metric (§2.4) rules, live and as stored.

The SDK computes these rules in process. Two tests run end to end, embedded and against a real
server (the `backend` fixture, tests/backends.py), through the writer process; the others log
offline (no writer process) and store the run's journal in process, as `branchline sync` does,
then read it back through `Api` from the embedded store.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import branchline
from branchline.api import Run as ApiRun
from branchline.sdk.sink import LocalSink
from branchline.sdk.sync import sync_journal
from tests.backends import Backend, history


def stored_summary(backend: Backend, run: branchline.Run) -> dict[str, Any]:
    return backend.run(run.entity, run.project, run.id).summary


class InProcess:
    """Runs logged offline, stored in process into an embedded store, read back through `Api`."""

    def __init__(self, root: Path, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.reader = Backend("embedded", f"sqlite:///{root / 'branchline' / 'store.db'}")

    def init(self, **kwargs: Any) -> branchline.Run:
        return branchline.init(mode="offline", settings=self.settings, **kwargs)

    def stored(self, run: branchline.Run) -> ApiRun:
        sink = LocalSink(self.reader.store_url)
        try:
            sync_journal(run._ctx.run_dir / "journal.blj", sink)
        finally:
            sink.close()
        return self.reader.run(run.entity, run.project, run.id)


@pytest.fixture
def local(tmp_path: Path, quiet: dict[str, Any]) -> Iterator[InProcess]:
    chosen = InProcess(tmp_path, quiet)
    yield chosen
    chosen.reader.close()


def test_summary_tracks_latest_values_and_drops_none(backend: Backend, quiet: dict[str, Any]) -> None:
    run = branchline.init(project="s", settings=quiet)
    run.log({"loss": 1.0, "acc": 0.1})
    run.log({"loss": 0.5})
    run.log({"acc": None})
    assert run.summary["loss"] == 0.5
    assert "acc" not in run.summary
    run.log({"loss": 0.4}, commit=False)
    assert run.summary["loss"] == 0.5  # summary follows committed rows only
    run.finish()
    summary = stored_summary(backend, run)
    assert summary["loss"] == 0.4 and "acc" not in summary
    assert summary["_step"] == 3 and "_runtime" in summary and "_timestamp" in summary


def test_explicit_summary_edits(local: InProcess) -> None:
    run = local.init(project="s")
    run.log({"loss": 1.0})
    run.summary["best"] = 0.9
    run.summary.update({"nested": {"x": 1}})
    run.summary["nested"]["y"] = 2
    run.summary.extra = "attr"
    del run.summary["loss"]
    assert run.summary["best"] == 0.9 and run.summary.extra == "attr"
    run.log({"best": 0.8})  # later logged values overwrite explicit ones
    run.finish()
    summary = local.stored(run).summary
    assert summary["best"] == 0.8
    assert summary["nested"] == {"x": 1, "y": 2}
    assert "loss" not in summary and summary["extra"] == "attr"


def test_summary_after_finish(local: InProcess) -> None:
    run = local.init(project="s")
    run.log({"a": 1})
    run.finish()
    with pytest.warns(UserWarning, match="not available in a finished run"):
        assert dict(run.summary.items()) == {}
    with pytest.raises(branchline.UsageError):
        run.summary["a"] = 2


def test_define_metric_aggregates(backend: Backend, quiet: dict[str, Any]) -> None:
    run = branchline.init(project="s", settings=quiet)
    run.define_metric("loss", summary="min,max,mean,first,last")
    run.define_metric("hidden_one", summary="none")
    for value in (3.0, 1.0, 2.0):
        run.log({"loss": value, "hidden_one": value})
    expected = {"min": 1, "max": 3, "mean": 2.0, "first": 3.0, "last": 2.0}
    assert run.summary["loss"] == expected
    assert "hidden_one" not in run.summary
    run.finish()
    summary = stored_summary(backend, run)
    assert summary["loss"] == expected and "hidden_one" not in summary


def test_define_metric_merge_overwrite_and_explicit_set(local: InProcess) -> None:
    run = local.init(project="s")
    run.define_metric("a", summary="max")
    metric = run.define_metric("a", summary="min")
    assert set(metric.summary) == {"max", "min"}
    metric = run.define_metric("a", summary="min", overwrite=True)
    assert metric.summary == ("min",)
    run.log({"a": 5})
    run.log({"a": 2})
    assert run.summary["a"] == {"min": 2}
    run.summary["a"] = 100  # explicit set drops the aggregation
    run.log({"a": 7})
    assert run.summary["a"] == 7
    run.finish()
    assert local.stored(run).summary["a"] == 7


def test_define_metric_glob_and_step_metric(local: InProcess) -> None:
    run = local.init(project="s")
    run.define_metric("epoch")
    run.define_metric("val/*", step_metric="epoch", summary="max")
    run.log({"epoch": 1, "train": 0.1})
    run.log({"val/acc": 0.5})  # epoch filled in by step_sync
    run.log({"val/acc": 0.7, "epoch": 2})
    run.log({"_private": 1})
    assert run.summary["val/acc"] == {"max": 0.7}
    run.finish()
    stored = local.stored(run)
    assert history(stored, "epoch") == {0: 1, 1: 1, 2: 2}
    assert stored.summary["val/acc"] == {"max": 0.7}


def test_define_metric_errors(local: InProcess) -> None:
    run = local.init(project="s")
    with pytest.raises(branchline.UsageError, match="trailing"):
        run.define_metric("a*b")
    with pytest.raises(branchline.UsageError, match="Unknown summary op 'best'"):
        run.define_metric("a", summary="best")
    with pytest.raises(branchline.UsageError):
        run.define_metric("")
    run.finish()


def test_config_write_once_and_allow_val_change(local: InProcess) -> None:
    run = local.init(project="s", config={"lr": 0.1, "--layers": 3})
    assert run.config.lr == 0.1 and run.config["layers"] == 3 and "layers" in run.config
    run.config.lr = 0.1  # same value is fine
    with pytest.raises(branchline.ConfigError, match="allow_val_change"):
        run.config.lr = 0.2
    with pytest.raises(branchline.ConfigError):
        run.config.update({"lr": 0.3})
    run.config.update({"lr": 0.3}, allow_val_change=True)
    run.config.setdefaults({"lr": 9, "batch": 32})
    run.config.update(argparse.Namespace(opt="adam"))
    run.config.nested = {"a": 1}
    with pytest.raises(AttributeError):
        _ = run.config.missing
    assert run.config.get("missing", 5) == 5
    run.finish()
    config = local.stored(run).config
    assert config == {"lr": 0.3, "layers": 3, "batch": 32, "opt": "adam", "nested": {"a": 1}}


def test_config_from_absl_like_flags_and_include_exclude(local: InProcess) -> None:
    class Flags:
        def flag_values_dict(self) -> dict[str, Any]:
            return {"lr": 1, "secret": "x", "depth": 2}

    run = local.init(project="s", config=Flags(), config_exclude_keys=["secret"])
    assert run.config.as_dict() == {"lr": 1, "depth": 2}
    run.finish()
    run = local.init(project="s", config={"a": 1, "b": 2}, config_include_keys=["a"])
    assert run.config.as_dict() == {"a": 1}
    run.finish()
    with pytest.raises(branchline.UsageError, match="not both"):
        local.init(project="s", config={"a": 1}, config_include_keys=["a"], config_exclude_keys=["b"])
