"""wandb-style training scripts that stopped on the media names now run on `import branchline as wandb`.

Each script is unmodified wandb code (only the import line differs), run in a fresh interpreter as
a user would run it; the test then reads the run back through `branchline.Api` and checks what the
script logged: images with captions, gradient and parameter histograms from `watch()`, a table
with image cells as a DataFrame, a confusion matrix, a matplotlib figure.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

import branchline
from branchline.api import Run as ApiRun
from branchline.api.media import images_of
from tests.conftest import run_python

pytestmark = pytest.mark.timeout(240)

MNIST = """
import torch
import torch.nn as nn
import torch.nn.functional as F
import branchline as wandb

torch.manual_seed(0)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, 1)
        self.conv2 = nn.Conv2d(4, 8, 3, 1)
        self.fc1 = nn.Linear(8 * 12 * 12, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return F.log_softmax(self.fc2(F.relu(self.fc1(x))), dim=1)


wandb.init(project="mnist", id="cnn", config={"lr": 0.01, "batch_size": 8, "epochs": 1})
config = wandb.config
model = Net()
optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
wandb.watch(model, log="all", log_freq=2)
for step in range(6):
    data = torch.rand(config.batch_size, 1, 28, 28)
    target = torch.randint(0, 10, (config.batch_size,))
    optimizer.zero_grad()
    output = model(data)
    loss = F.nll_loss(output, target)
    loss.backward()
    optimizer.step()
    pred = output.argmax(dim=1)
    examples = [wandb.Image(data[i], caption=f"Pred: {pred[i].item()} Truth: {target[i].item()}") for i in range(3)]
    wandb.log({"examples": examples, "loss": loss.item()})
wandb.run.summary["final_loss"] = loss.item()
wandb.finish()
"""

TABLE = """
import numpy as np
import branchline as wandb

run = wandb.init(project="tables", id="preds")
columns = ["id", "image", "guess", "truth"]
table = wandb.Table(columns=columns)
for i in range(4):
    digit = np.full((28, 28), i * 60, dtype=np.uint8)
    table.add_data(i, wandb.Image(digit), i % 3, i % 2)
run.log({"predictions": table})
run.finish()
"""

CONFUSION = """
import numpy as np
import branchline as wandb

wandb.init(project="plots", id="cm")
y_true = np.array([0, 1, 2, 2, 1, 0, 1])
preds = np.array([0, 2, 2, 2, 1, 1, 1])
wandb.log({"conf_mat": wandb.plot.confusion_matrix(probs=None, y_true=y_true, preds=preds,
                                                   class_names=["cat", "dog", "bird"])})
wandb.finish()
"""

FIGURE = """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import branchline as wandb

run = wandb.init(project="figures", id="fig")
fig, ax = plt.subplots(figsize=(3, 2), dpi=50)
ax.plot(np.arange(10), np.arange(10) ** 2)
ax.set_title("squares")
wandb.log({"chart": fig, "plt_module": plt})
run.finish()
"""


def _run(script: str, tmp_path: Path) -> ApiRun:
    done = run_python(script, tmp_path, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    api = branchline.Api(overrides={"store_url": f"sqlite:///{tmp_path / 'branchline' / 'store.db'}"})
    runs = api.runs(_project(script))
    assert len(runs) == 1
    return runs[0]


def _project(script: str) -> str:
    return script.split('project="', 1)[1].split('"', 1)[0]


def _pixels(run: ApiRun, descriptor: dict[str, Any]) -> np.ndarray:
    with PILImage.open(io.BytesIO(run.media(descriptor))) as picture:
        return np.asarray(picture)


def test_a_pytorch_mnist_script_with_watch_and_images(tmp_path: Path) -> None:
    run = _run(MNIST, tmp_path)
    assert run.config["lr"] == 0.01 and run.config["batch_size"] == 8
    rows = list(run.scan_history())
    assert [r["_step"] for r in rows] == list(range(6))
    for row in rows:
        examples = row["examples"]
        assert examples["_type"] == "images/separated" and examples["count"] == 3
        assert (examples["width"], examples["height"]) == (28, 28)
        assert all(c.startswith("Pred: ") and " Truth: " in c for c in examples["captions"])
        for descriptor in images_of(examples):
            assert _pixels(run, descriptor).shape == (28, 28)
    # log_freq=2: parameters after every 2nd forward, gradients after every 2nd backward.
    watched = [r for r in rows if "gradients/conv1.weight" in r]
    assert [r["_step"] for r in watched] == [1, 3, 5]
    for name in ("conv1.weight", "conv1.bias", "conv2.weight", "fc1.weight", "fc2.bias"):
        for kind in ("gradients", "parameters"):
            histogram = watched[0][f"{kind}/{name}"]
            assert histogram["_type"] == "histogram" and len(histogram["bins"]) == len(histogram["values"]) + 1
    conv1 = watched[0]["parameters/conv1.weight"]
    assert sum(conv1["values"]) == 4 * 1 * 3 * 3  # every weight counted once
    assert run.summary["final_loss"] == pytest.approx(rows[-1]["loss"])


def test_a_table_with_image_cells_reads_back_as_a_dataframe(tmp_path: Path) -> None:
    run = _run(TABLE, tmp_path)
    descriptor = run.summary["predictions"]
    assert descriptor["_type"] == "table-file" and (descriptor["nrows"], descriptor["ncols"]) == (4, 4)
    frame = run.table(descriptor)
    assert list(frame.columns) == ["id", "image", "guess", "truth"]
    assert frame[["id", "guess", "truth"]].values.tolist() == [[i, i % 3, i % 2] for i in range(4)]
    for i, cell in enumerate(frame["image"]):
        assert cell["_type"] == "image-file"
        np.testing.assert_array_equal(_pixels(run, cell), np.full((28, 28), i * 60, np.uint8))


def test_a_confusion_matrix(tmp_path: Path) -> None:
    run = _run(CONFUSION, tmp_path)
    descriptor = run.summary["conf_mat"]
    assert descriptor["chart"]["preset"] == "confusion_matrix"
    frame = run.table(descriptor)
    counts = {(a, p): n for a, p, n in frame.values.tolist()}
    assert len(counts) == 9 and sum(counts.values()) == 7
    assert counts[("bird", "bird")] == 2 and counts[("dog", "bird")] == 1 and counts[("cat", "dog")] == 1


def test_a_matplotlib_figure_passed_to_log(tmp_path: Path) -> None:
    run = _run(FIGURE, tmp_path)
    row = next(iter(run.scan_history()))
    for key in ("chart", "plt_module"):  # wandb also takes the pyplot module (its current figure)
        descriptor = row[key]
        assert descriptor["_type"] == "image-file" and (descriptor["width"], descriptor["height"]) == (150, 100)
        picture = _pixels(run, descriptor)
        assert picture.shape == (100, 150, 4) and len(np.unique(picture.reshape(-1, 4), axis=0)) > 2
