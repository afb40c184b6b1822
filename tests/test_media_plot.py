"""`plot.*` presets and `watch()` (issue 14): logged through the SDK, read back through `Api`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import branchline
from tests.backends import Backend, history


def test_plot_presets_store_their_table_and_chart(backend: Backend, quiet: dict[str, Any]) -> None:
    table = branchline.Table(columns=["x", "y", "name"], data=[[1, 2.0, "a"], [2, 4.0, "b"], [3, 9.0, "c"]])
    y_true = [0, 1, 2, 2, 1, 0]
    preds = [0, 2, 2, 2, 1, 1]
    probas = np.array(
        [[0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.1, 0.1, 0.8], [0.3, 0.2, 0.5], [0.1, 0.7, 0.2], [0.4, 0.5, 0.1]]
    )
    run = branchline.init(project="plots", settings=quiet)
    run.log(
        {
            "line": branchline.plot.line(table, "x", "y", title="Y"),
            "scatter": branchline.plot.scatter(table, "x", "y"),
            "bar": branchline.plot.bar(table, "name", "y"),
            "hist": branchline.plot.histogram(table, "y"),
            "series": branchline.plot.line_series([0, 1, 2], [[1, 2, 3], [3, 2, 1]], keys=["up", "down"]),
            "cm": branchline.plot.confusion_matrix(y_true=y_true, preds=preds, class_names=["c0", "c1", "c2"]),
            "roc": branchline.plot.roc_curve(y_true, probas),
            "pr": branchline.plot.pr_curve(y_true, probas, labels=["c0", "c1", "c2"]),
        }
    )
    run.finish()
    api_run = backend.run(run.entity, "plots", run.id)
    row = next(iter(api_run.scan_history()))
    assert row["line"]["chart"] == {"preset": "line", "fields": {"x": "x", "y": "y"}, "title": "Y"}
    assert api_run.table(row["line"]).values.tolist() == [[1, 2.0, "a"], [2, 4.0, "b"], [3, 9.0, "c"]]
    assert row["bar"]["chart"]["fields"] == {"label": "name", "value": "y"}
    assert row["hist"]["chart"]["preset"] == "histogram" and row["scatter"]["chart"]["preset"] == "scatter"
    series = api_run.table(row["series"])
    assert series.values.tolist()[:3] == [["up", 1, 0], ["up", 2, 1], ["up", 3, 2]] and len(series) == 6
    cm = api_run.table(row["cm"])
    counts = {(a, p): n for a, p, n in cm.values.tolist()}
    assert counts[("c2", "c2")] == 2 and counts[("c1", "c2")] == 1 and counts[("c0", "c1")] == 1
    assert sum(counts.values()) == 6 and row["cm"]["chart"]["preset"] == "confusion_matrix"
    roc = api_run.table(row["roc"])
    for name, group in roc.groupby("class"):
        assert group["fpr"].iloc[0] == 0.0 and group["tpr"].iloc[-1] == 1.0 and group["fpr"].iloc[-1] == 1.0, name
        assert group["tpr"].is_monotonic_increasing and group["fpr"].is_monotonic_increasing
    pr = api_run.table(row["pr"])
    assert set(pr["class"]) == {"c0", "c1", "c2"} and pr["recall"].max() == 1.0
    # class c2 (2 positives of 6): the last point takes every sample as positive
    c2 = pr[pr["class"] == "c2"]
    assert c2["precision"].iloc[-1] == pytest.approx(2 / 6)


def test_plot_presets_refuse_bad_input() -> None:
    table = branchline.Table(columns=["x", "y"])
    with pytest.raises(ValueError, match=r"y='z' is not a column of the table \(x, y\)"):
        branchline.plot.line(table, "x", "z")
    with pytest.raises(TypeError, match=r"takes a branchline\.Table first"):
        branchline.plot.scatter([[1, 2]], "x", "y")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"either preds= .* or probs="):
        branchline.plot.confusion_matrix(y_true=[0], preds=[0], probs=[[1.0]])
    with pytest.raises(ValueError, match="3 true labels for 2 predictions"):
        branchline.plot.confusion_matrix(y_true=[0, 1, 1], preds=[0, 1])
    with pytest.raises(ValueError, match=r"samples × classes\) for 2 samples"):
        branchline.plot.roc_curve([0, 1], np.zeros((3, 2)))


class SmallCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3)
        self.fc = torch.nn.Linear(4 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def _train(run: Any, model: torch.nn.Module, steps: int) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(0)
    for _ in range(steps):
        x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 3, (8,))
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        run.log({"loss": loss.item()})


def test_watch_logs_gradient_and_parameter_histograms(backend: Backend, quiet: dict[str, Any]) -> None:
    torch.manual_seed(0)
    model, second = SmallCNN(), SmallCNN()
    run = branchline.init(project="watch", settings=quiet)
    run.watch(model, log="all", log_freq=3)
    branchline.watch(second, log="parameters", log_freq=5)
    _train(run, model, 7)
    _train(run, second, 5)
    run.unwatch()
    _train(run, model, 3)
    run.finish()
    api_run = backend.run(run.entity, "watch", run.id)
    grads = history(api_run, "gradients/conv.weight")
    params = history(api_run, "parameters/fc.bias")
    assert sorted(grads) == [2, 5] and sorted(params) == [2, 5]  # every 3rd pass, with that step's row
    assert grads[2]["_type"] == "histogram" and len(grads[2]["values"]) == 64 and sum(grads[2]["values"]) == 4 * 9
    assert sum(params[5]["values"]) == 3
    assert sorted(history(api_run, "graph_1/parameters/conv.bias")) == [11]
    assert history(api_run, "graph_1/gradients/conv.bias") == {}  # log="parameters" only
    assert len(history(api_run, "loss")) == 15


def test_watch_refuses_what_it_cannot_watch(quiet: dict[str, Any]) -> None:
    run = branchline.init(project="watch", settings=quiet)
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        run.watch(object())
    with pytest.raises(ValueError, match="log='weights'"):
        run.watch(SmallCNN(), log="weights")
    with pytest.raises(ValueError, match="log_freq=0"):
        run.watch(SmallCNN(), log_freq=0)
    run.finish()


@pytest.mark.embedded_only("runs the example script in a process of its own, into its own directory")
def test_the_wandb_style_media_example_runs(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "media_demo.py"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    env["BRANCHLINE_CONFIG_DIR"] = str(tmp_path / ".config")
    done = subprocess.run(
        [sys.executable, str(script), "--dir", str(tmp_path / "demo"), "--steps", "21"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    api = branchline.Api(overrides={"root_dir": str(tmp_path / "demo")})
    run = api.runs("media-demo")[0]
    rows = list(run.scan_history())
    assert rows[0]["examples"]["_type"] == "images/separated" and rows[0]["examples"]["count"] == 4
    assert rows[-1]["predictions"]["nrows"] == 8 and rows[-1]["confusion"]["chart"]["preset"] == "confusion_matrix"
    assert sum(run.table(rows[-1]["confusion"])["nPredictions"]) == 64
    assert rows[9]["gradients/0.weight"]["_type"] == "histogram"
    api.close()
