"""Media logged with the real wandb client read back through `branchline.Api` as branchline's own do.

One script logs every media type; it runs once with the wandb client (its own venv, over the W&B
protocol) and once with `import branchline as wandb` (branchline's SDK, over branchline's HTTP
API), into the same server. Each value is then read back through `branchline.Api` from both runs
and compared: the descriptor's shape (every field the wandb client sends is there), the pixels of
images and masks, the box sets, the table cells (image cells included, which the wandb client
stores in a `run_table` artifact), the histogram bins, the confusion matrix counts, the audio
bytes and the HTML.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from branchline.api import Api
from branchline.api import Run as ApiRun
from branchline.api.media import images_of
from tests.backends import history
from tests.test_wandb_client import Server, _need_client, _serve, run_clients

pytestmark = pytest.mark.timeout(300)

SCRIPT = """
import wave
import numpy as np
{import_line}

with wave.open("tone.wav", "wb") as out:
    out.setnchannels(1)
    out.setsampwidth(2)
    out.setframerate(8000)
    out.writeframes((np.arange(800) % 100).astype("<i2").tobytes())

run = wandb.init(project="media", id="{run_id}")
rng = np.random.default_rng(0)
rgb = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
classes = (np.arange(12 * 16, dtype=np.uint8).reshape(12, 16) % 3)
boxes = {{"pred": {{"box_data": [{{"position": {{"minX": 0.1, "maxX": 0.5, "minY": 0.2, "maxY": 0.6}},
                                   "class_id": 1, "box_caption": "cat", "scores": {{"p": 0.9}}}}],
                   "class_labels": {{1: "cat", 2: "dog"}}}}}}
table = wandb.Table(columns=["id", "image", "label"])
for i in range(3):
    table.add_data(i, wandb.Image(np.full((4, 4, 3), 40 * i, dtype=np.uint8)), f"l{{i}}")
values = rng.normal(size=5000)
counts, edges = np.histogram(values, bins=8)
run.log({{
    "img": wandb.Image(rgb, caption="cap", boxes=boxes,
                       masks={{"seg": {{"mask_data": classes, "class_labels": {{1: "cat", 2: "dog"}}}}}}),
    "batch": [wandb.Image(rgb, caption="a"), wandb.Image(rgb[::-1].copy(), caption="b")],
    "tab": table,
    "hist": wandb.Histogram(values),
    "hist_np": wandb.Histogram(np_histogram=(counts, edges)),
    "cm": wandb.plot.confusion_matrix(y_true=[0, 1, 2, 2, 1], preds=[0, 2, 2, 2, 1], class_names=["a", "b", "c"]),
    "aud": wandb.Audio("tone.wav", caption="tone"),
    "page": wandb.Html("<b>hi</b>"),
}})
for epoch in range(2):  # the same plain cells each time; only the images differ
    per_epoch = wandb.Table(columns=["id", "image"])
    per_epoch.add_data(0, wandb.Image(np.full((2, 2), 100 + epoch, dtype=np.uint8)))
    run.log({{"epoch_tab": per_epoch}})
run.summary["best_image"] = wandb.Image(rgb[:, :8].copy())
run.finish()
"""

WANDB = SCRIPT.format(import_line="import wandb", run_id="by-wandb")
OURS = SCRIPT.format(import_line="import branchline as wandb", run_id="by-branchline")


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiRun, ApiRun]]:
    """(the wandb client's run, branchline's run), both read back through branchline.Api."""
    _need_client()
    workdir = tmp_path_factory.mktemp("wandb-media")
    with _serve(f"sqlite:///{workdir / 'store.db'}", workdir, []) as server:
        ours = _branchline_client(OURS, server)
        run_clients([WANDB], server)
        assert ours.returncode == 0, ours.stdout + ours.stderr
        api = Api(overrides={"base_url": server.url}, api_key=server.key)
        yield api.run("alice/media/by-wandb"), api.run("alice/media/by-branchline")
        api.close()


def _branchline_client(script: str, server: Server) -> subprocess.CompletedProcess[str]:
    cwd = server.workdir / "branchline-client"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "BRANCHLINE_"))}
    env.update(
        BRANCHLINE_BASE_URL=server.url,
        BRANCHLINE_API_KEY=server.key,
        BRANCHLINE_CONFIG_DIR=str(cwd / ".config"),
        BRANCHLINE_QUIET="true",
    )
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )


def _row(run: ApiRun) -> dict[str, Any]:
    rows = list(run.scan_history())
    assert [r["_step"] for r in rows] == [0, 1, 2], rows
    return rows[0]


def _pixels(run: ApiRun, descriptor: dict[str, Any]) -> np.ndarray:
    with PILImage.open(io.BytesIO(run.media(descriptor))) as picture:
        return np.asarray(picture)


def _same_shape(theirs: dict[str, Any], ours: dict[str, Any], *, not_ours: frozenset[str] = frozenset()) -> None:
    """Every field the wandb client sends is in branchline's descriptor (bar `not_ours`), same _type."""
    assert theirs["_type"] == ours["_type"]
    missing = set(theirs) - set(ours) - not_ours
    assert not missing, f"fields the wandb client sends that branchline's descriptor lacks: {missing}"
    for name in ("path", "sha256", "size"):
        if name in theirs:
            assert isinstance(ours[name], type(theirs[name])), name


def test_images_with_boxes_and_masks(both: tuple[ApiRun, ApiRun]) -> None:
    wandb_run, our_run = both
    theirs, ours = _row(wandb_run)["img"], _row(our_run)["img"]
    _same_shape(theirs, ours)
    assert theirs["caption"] == ours["caption"] == "cap"
    assert (theirs["width"], theirs["height"]) == (ours["width"], ours["height"]) == (16, 12)
    np.testing.assert_array_equal(_pixels(wandb_run, theirs), _pixels(our_run, ours))
    assert set(theirs["masks"]) == set(ours["masks"]) == {"seg"}
    _same_shape(theirs["masks"]["seg"], ours["masks"]["seg"])
    np.testing.assert_array_equal(_pixels(wandb_run, theirs["masks"]["seg"]), _pixels(our_run, ours["masks"]["seg"]))
    assert set(theirs["boxes"]) == set(ours["boxes"]) == {"pred"}
    _same_shape(theirs["boxes"]["pred"], ours["boxes"]["pred"])
    their_boxes = json.loads(wandb_run.media(theirs["boxes"]["pred"]))
    our_boxes = json.loads(our_run.media(ours["boxes"]["pred"]))
    assert their_boxes == our_boxes
    assert our_boxes["box_data"][0]["box_caption"] == "cat" and our_boxes["class_labels"] == {"1": "cat", "2": "dog"}


def test_a_list_of_images(both: tuple[ApiRun, ApiRun]) -> None:
    wandb_run, our_run = both
    theirs, ours = _row(wandb_run)["batch"], _row(our_run)["batch"]
    _same_shape(theirs, ours)
    for name in ("count", "width", "height", "format", "captions"):
        assert theirs[name] == ours[name], name
    for their_image, our_image in zip(images_of(theirs), images_of(ours), strict=True):
        np.testing.assert_array_equal(_pixels(wandb_run, their_image), _pixels(our_run, our_image))


def test_a_table_with_image_cells(both: tuple[ApiRun, ApiRun]) -> None:
    wandb_run, our_run = both
    theirs, ours = _row(wandb_run)["tab"], _row(our_run)["tab"]
    # The client's table also names the artifact it keeps the table in; ours is the run file alone.
    _same_shape(theirs, ours, not_ours=frozenset({"artifact_path", "_latest_artifact_path", "log_mode"}))
    their_frame, our_frame = wandb_run.table(theirs), our_run.table(ours)
    assert list(their_frame.columns) == list(our_frame.columns) == ["id", "image", "label"]
    assert their_frame[["id", "label"]].values.tolist() == our_frame[["id", "label"]].values.tolist()
    for i, (their_cell, our_cell) in enumerate(zip(their_frame["image"], our_frame["image"], strict=True)):
        _same_shape(their_cell, our_cell)
        expected = np.full((4, 4, 3), 40 * i, np.uint8)
        np.testing.assert_array_equal(_pixels(wandb_run, their_cell), expected)
        np.testing.assert_array_equal(_pixels(our_run, our_cell), expected)


def test_histograms(both: tuple[ApiRun, ApiRun]) -> None:
    wandb_run, our_run = both
    for key in ("hist", "hist_np"):
        theirs, ours = _row(wandb_run)[key], _row(our_run)[key]
        assert set(theirs) == set(ours) == {"_type", "values", "bins"}
        assert theirs["values"] == ours["values"], key
        assert ours["bins"] == pytest.approx(theirs["bins"], rel=1e-12), key


def test_a_confusion_matrix(both: tuple[ApiRun, ApiRun]) -> None:
    wandb_run, our_run = both
    # The wandb client logs the chart's table under `<key>_table` (the chart itself goes to its
    # config); branchline logs the table under the key, with the chart preset in the descriptor.
    theirs, ours = _row(wandb_run)["cm_table"], _row(our_run)["cm"]
    _same_shape(theirs, ours, not_ours=frozenset({"artifact_path", "_latest_artifact_path", "log_mode"}))
    assert ours["chart"]["preset"] == "confusion_matrix"
    their_frame, our_frame = wandb_run.table(theirs), our_run.table(ours)
    assert list(their_frame.columns) == list(our_frame.columns) == ["Actual", "Predicted", "nPredictions"]
    their_counts = {(a, p): n for a, p, n in their_frame.values.tolist()}
    our_counts = {(a, p): n for a, p, n in our_frame.values.tolist()}
    assert our_counts == {k: v for k, v in their_counts.items()} and sum(our_counts.values()) == 5


def test_audio_html_and_a_summary_image(both: tuple[ApiRun, ApiRun]) -> None:
    wandb_run, our_run = both
    their_row, our_row = _row(wandb_run), _row(our_run)
    _same_shape(their_row["aud"], our_row["aud"])
    assert their_row["aud"]["caption"] == our_row["aud"]["caption"] == "tone"
    assert wandb_run.media(their_row["aud"]) == our_run.media(our_row["aud"])
    _same_shape(their_row["page"], our_row["page"])
    assert b"<b>hi</b>" in wandb_run.media(their_row["page"]) and our_run.media(our_row["page"]) == b"<b>hi</b>"
    theirs, ours = wandb_run.summary["best_image"], our_run.summary["best_image"]
    _same_shape(theirs, ours)
    np.testing.assert_array_equal(_pixels(wandb_run, theirs), _pixels(our_run, ours))
    assert _pixels(our_run, ours).shape == (12, 8, 3)


def test_a_table_logged_at_each_epoch_reads_back_each_epochs_images(both: tuple[ApiRun, ApiRun]) -> None:
    for run in both:
        logged = history(run, "epoch_tab")
        assert sorted(logged) == [1, 2]
        cells = [run.table(logged[step])["image"][0] for step in (1, 2)]
        assert [int(_pixels(run, cell)[0, 0]) for cell in cells] == [100, 101], run.id
