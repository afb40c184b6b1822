"""Media types (issue 14): every input each type accepts, logged and read back through `Api`.

Tests taking `backend` run embedded and against a real server; each value is compared with what
went in (pixels, table cells, histogram bins, samples) after the writer encoded and stored it.
"""

from __future__ import annotations

import io
import json
import re
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

import branchline
from branchline.api import Run as ApiRun
from branchline.api.media import images_of
from tests.backends import Backend, history

PATH = re.compile(r"^media/images/(\w+)_(\d+)_[0-9a-f]{20}\.png$")


def pixels(run: ApiRun, descriptor: dict[str, Any]) -> np.ndarray:
    with PILImage.open(io.BytesIO(run.media(descriptor))) as picture:
        return np.asarray(picture)


def logged(backend: Backend, run: Any) -> ApiRun:
    return backend.run(run.entity, run.project, run.id)


def test_image_from_every_input_reads_back_pixel_for_pixel(
    backend: Backend, tmp_path: Path, quiet: dict[str, Any]
) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (24, 32), dtype=np.uint8)
    unit = rng.random((24, 32, 3))
    on_disk = tmp_path / "given.png"
    PILImage.fromarray(rgb).save(on_disk)
    inputs: dict[str, tuple[Any, np.ndarray]] = {
        "hwc": (branchline.Image(rgb, caption="hwc"), rgb),
        "hw": (branchline.Image(gray), gray),
        "chw": (branchline.Image(rgb.transpose(2, 0, 1)), rgb),
        "float": (branchline.Image(unit), np.rint(unit * 255).astype(np.uint8)),
        "torch": (branchline.Image(torch.from_numpy(unit.transpose(2, 0, 1)).float()), None),
        "pil": (branchline.Image(PILImage.fromarray(rgb)), rgb),
        "file": (branchline.Image(str(on_disk)), rgb),
        "mask": (branchline.Image(gray > 128), np.where(gray > 128, 255, 0).astype(np.uint8)),
        "rgba": (branchline.Image(rgb, mode="RGBA"), np.dstack([rgb, np.full((24, 32), 255, np.uint8)])),
    }
    run = branchline.init(project="media", settings=quiet)
    run.log({name: image for name, (image, _) in inputs.items()})
    run.log({"later": branchline.Image(gray)}, step=3)
    run.finish()

    api_run = logged(backend, run)
    row = next(iter(api_run.scan_history()))
    for name, (_, expected) in inputs.items():
        descriptor = row[name]
        assert descriptor["_type"] == "image-file" and (descriptor["width"], descriptor["height"]) == (32, 24)
        assert PATH.match(descriptor["path"]) and descriptor["path"].startswith(f"media/images/{name}_0_")
        assert descriptor["size"] == len(api_run.media(descriptor)), name
        got = pixels(api_run, descriptor)
        if expected is not None:
            np.testing.assert_array_equal(got, expected, err_msg=name)
    torch_pixels = pixels(api_run, row["torch"]).astype(int)
    assert np.abs(torch_pixels - np.rint(unit * 255)).max() <= 1  # float32 rounding
    assert row["hwc"]["caption"] == "hwc" and row["hwc"]["format"] == "png"
    assert history(api_run, "later")[3]["path"].startswith("media/images/later_3_")
    stored = {f["path"] for f in api_run.files()}
    assert {row[name]["path"] for name in inputs} <= stored
    target = api_run.download_media(row["hw"], root=str(tmp_path / "dl"))
    assert target == tmp_path / "dl" / row["hw"]["path"] and target.stat().st_size == row["hw"]["size"]


def test_image_boxes_masks_file_types_and_lists(backend: Backend, quiet: dict[str, Any]) -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    classes = np.arange(64, dtype=np.uint8).reshape(8, 8) % 3
    boxes = {"pred": {"box_data": [{"position": {"minX": 0.1, "maxX": 0.5, "minY": 0.2, "maxY": 0.6}, "class_id": 1}]}}
    run = branchline.init(project="media", settings=quiet)
    run.log(
        {
            "det": branchline.Image(rgb, boxes=boxes, masks={"seg": {"mask_data": classes, "class_labels": {1: "a"}}}),
            "jpg": branchline.Image(rgb, file_type="jpg"),
            "batch": [branchline.Image(rgb + i) for i in range(3)],
        }
    )
    run.finish()
    api_run = logged(backend, run)
    row = next(iter(api_run.scan_history()))
    pred = row["det"]["boxes"]["pred"]  # the wandb client's shape: a boxes2D file, with the boxes inline too
    assert pred["_type"] == "boxes2D" and pred["path"].startswith("media/metadata/boxes2D/det_0_")
    assert pred["path"].endswith(".boxes2D.json") and pred["box_data"] == boxes["pred"]["box_data"]
    assert json.loads(api_run.media(pred)) == {"box_data": boxes["pred"]["box_data"]}
    mask = row["det"]["masks"]["seg"]
    assert mask["_type"] == "mask" and mask["class_labels"] == {"1": "a"}
    assert mask["path"].startswith("media/images/mask/det_0_") and mask["path"].endswith(".mask.png")
    np.testing.assert_array_equal(pixels(api_run, mask), classes)
    assert row["jpg"]["path"].endswith(".jpg") and row["jpg"]["format"] == "jpg"
    batch = row["batch"]  # the wandb client's shape for a list of images under one key
    assert batch["_type"] == "images/separated" and batch["count"] == 3 and (batch["width"], batch["height"]) == (8, 8)
    assert batch["filenames"] == [d["path"] for d in images_of(batch)] and batch["format"] == "png"
    assert [int(pixels(api_run, d)[0, 0, 0]) for d in images_of(batch)] == [0, 1, 2]
    as_wandb_logs_it = {k: v for k, v in batch.items() if k != "images"}
    assert [int(pixels(api_run, d)[0, 0, 0]) for d in images_of(as_wandb_logs_it)] == [0, 1, 2]
    with pytest.raises(branchline.UsageError, match="a list of 3 images"):
        api_run.media(batch)


def test_table_with_image_cells_reads_back_as_a_dataframe(backend: Backend, quiet: dict[str, Any]) -> None:
    import pandas as pd

    digits = [np.full((4, 4), i * 20, np.uint8) for i in range(3)]
    table = branchline.Table(columns=["id", "label"])
    for i in range(3):
        table.add_data(i, f"d{i}")
    table.add_column("image", [branchline.Image(d) for d in digits])
    table.add_column("embedding", [np.arange(40.0) + i for i in range(3)])
    table.add_column("score", [np.float32(0.5), torch.tensor(1.5), np.int64(7)])
    assert table.get_column("id") == [0, 1, 2] and list(table.get_column("id", convert_to="numpy")) == [0, 1, 2]
    assert list(table.get_dataframe().columns) == ["id", "label", "image", "embedding", "score"]
    frame = pd.DataFrame({"x": [1.5, 2.5], "y": ["a", "b"]})
    run = branchline.init(project="media", settings=quiet)
    run.log({"preds": table, "df": branchline.Table(dataframe=frame), "raw": frame})
    run.finish()

    api_run = logged(backend, run)
    row = next(iter(api_run.scan_history()))
    descriptor = row["preds"]
    assert descriptor["_type"] == "table-file" and (descriptor["ncols"], descriptor["nrows"]) == (5, 3)
    assert re.match(r"^media/table/preds_0_[0-9a-f]{20}\.table\.json$", descriptor["path"])
    back = api_run.table(descriptor)
    assert list(back["id"]) == [0, 1, 2] and list(back["label"]) == ["d0", "d1", "d2"]
    assert back["embedding"][2] == (np.arange(40.0) + 2).tolist() and list(back["score"]) == [0.5, 1.5, 7]
    for cell, expected in zip(back["image"], digits, strict=True):
        assert cell["_type"] == "image-file"
        np.testing.assert_array_equal(pixels(api_run, cell), expected)
    for key in ("df", "raw"):
        pd.testing.assert_frame_equal(api_run.table(row[key]), frame)


def test_histograms_keep_their_bins(backend: Backend, quiet: dict[str, Any]) -> None:
    values = np.random.default_rng(1).normal(size=10_000)
    counts, edges = np.histogram(values, bins=10)
    run = branchline.init(project="media", settings=quiet)
    run.log(
        {
            "seq": branchline.Histogram(values.tolist()),
            "np": branchline.Histogram(np_histogram=(counts, edges)),
            "few": branchline.Histogram(torch.tensor([1.0, 2.0, 2.0, float("nan")]), num_bins=2),
        }
    )
    run.finish()
    row = next(iter(logged(backend, run).scan_history()))
    assert row["seq"]["_type"] == "histogram" and len(row["seq"]["values"]) == 64 and len(row["seq"]["bins"]) == 65
    assert sum(row["seq"]["values"]) == 10_000
    assert row["seq"]["bins"][0] == pytest.approx(values.min()) and row["seq"]["bins"][-1] == pytest.approx(
        values.max()
    )
    assert row["np"] == {"_type": "histogram", "values": counts.tolist(), "bins": pytest.approx(edges.tolist())}
    assert row["few"]["values"] == [1, 2]  # the NaN is left out


def test_audio_video_html_read_back(backend: Backend, tmp_path: Path, quiet: dict[str, Any]) -> None:
    samples = np.sin(np.linspace(0, 20, 800)).astype(np.float32)
    frames = np.random.default_rng(2).integers(0, 256, (5, 3, 12, 16), dtype=np.uint8)
    page = tmp_path / "page.html"
    page.write_text("<p>from a file</p>")
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42 not a real movie")
    run = branchline.init(project="media", settings=quiet)
    run.log(
        {
            "sound": branchline.Audio(samples, sample_rate=8000, caption="sine"),
            "movie": branchline.Video(frames, fps=10),
            "given": branchline.Video(str(clip)),
            "page": branchline.Html("<b>hi</b>"),
            "page_file": branchline.Html(str(page)),
        }
    )
    run.finish()
    api_run = logged(backend, run)
    row = next(iter(api_run.scan_history()))
    sound = row["sound"]
    assert sound["_type"] == "audio-file" and sound["sample_rate"] == 8000 and sound["caption"] == "sine"
    with wave.open(io.BytesIO(api_run.media(sound))) as wav:
        assert wav.getframerate() == 8000
        got = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    np.testing.assert_array_equal(got, np.rint(samples.astype(np.float64) * 32767).astype(np.int16))
    movie = row["movie"]
    assert movie["_type"] == "video-file" and movie["format"] == "gif" and movie["path"].endswith(".gif")
    with PILImage.open(io.BytesIO(api_run.media(movie))) as gif:
        assert gif.n_frames == 5 and gif.size == (16, 12)
    assert row["given"]["format"] == "mp4" and api_run.media(row["given"]) == clip.read_bytes()
    assert row["page"]["_type"] == "html-file" and api_run.media(row["page"]) == b"<b>hi</b>"
    assert api_run.media(row["page_file"]) == b"<p>from a file</p>"


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: branchline.Image(np.zeros((2, 3, 5, 7))), ValueError, r"shape \(2, 3, 5, 7\) is not an image"),
        (lambda: branchline.Image(np.zeros((5, 7, 9))), ValueError, r"expected H×W, H×W×C or C×H×W"),
        (lambda: branchline.Image(np.array([["a"]])), TypeError, r"dtype <U1 is not an image"),
        (lambda: branchline.Image(np.zeros((70_000, 1), np.uint8)), ValueError, r"from 1 to 65535 pixels"),
        (lambda: branchline.Image(np.zeros((5000, 5000, 3))), ValueError, r"most one media object may hold is"),
        (lambda: branchline.Image("missing.png"), ValueError, r"'missing.png' is not a file"),
        (lambda: branchline.Image(np.zeros((2, 2)), file_type="tiff"), ValueError, r"expected one of png"),
        (lambda: branchline.Histogram([float("nan")] * 3), ValueError, r"no finite values"),
        (lambda: branchline.Histogram([1, 2], num_bins=513), ValueError, r"from 1 to 512"),
        (lambda: branchline.Histogram(np_histogram=([1, 2], [0, 1])), ValueError, r"2 counts need 3 bin edges"),
        (lambda: branchline.Table(columns=["a", "b"], data=[[1]]), ValueError, r"has 1 values but the table has 2"),
        (lambda: branchline.Table(columns=["a", "a"]), ValueError, r"must be unique"),
        (lambda: branchline.Audio(np.zeros(10)), ValueError, r"needs sample_rate="),
        (lambda: branchline.Audio(np.zeros((2, 2, 2)), sample_rate=8), ValueError, r"1-D array of samples"),
        (lambda: branchline.Video(np.zeros((2, 5, 4, 4))), ValueError, r"T×C×H×W array"),
        (lambda: branchline.Html(42), TypeError, r"expected an HTML string"),
        (lambda: branchline.Image(None), TypeError, r"None \(a NoneType\) is not an image; expected a numpy array"),
        (lambda: branchline.Image([[1, 2], [3]]), TypeError, r"\[\[1, 2\], \[3\]\] cannot be read as an array"),
        (lambda: branchline.Image(np.zeros((0, 4))), ValueError, r"is 4×0 pixels; each side must be from 1 to 65535"),
        (
            lambda: branchline.Image(np.zeros((4, 4)), masks={"m": {"mask_data": np.zeros((4, 4, 3))}}),
            ValueError,
            r"mask 'm': mask_data must be an H×W array of integer class ids, got float64 \(4, 4, 3\)",
        ),
        (
            lambda: branchline.Image(np.zeros((4, 4)), boxes={"p": {"box_data": [{"class_id": 1}]}}),
            ValueError,
            r"box_data\[0\] is \{'class_id': 1\}; expected a dict with a 'position'",
        ),
        (lambda: branchline.Histogram(["a", "b"]), TypeError, r"\['a', 'b'\] holds values of dtype <U1"),
        (lambda: branchline.Histogram([]), ValueError, r"the sequence is empty"),
        (lambda: branchline.Histogram([float("inf"), float("nan")]), ValueError, r"no finite values"),
        (lambda: branchline.Table(columns=["a"], data=[1, 2]), TypeError, r"row 0 is 1; expected a list of rows"),
        (lambda: branchline.Table(columns=["a"], data=[[object()]]), TypeError, r"the cell \[0\]\['a'\] holds <object"),
        (
            lambda: branchline.Table(columns=["a", "b"]).add_data(1, 2, 3),
            ValueError,
            r"the row \[1, 2, 3\] has 3 values but the table has 2 columns \(a, b\)",
        ),
    ],
)
def test_bad_input_names_the_value_and_what_was_expected(make: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        make()


def test_table_add_column_checks_its_length() -> None:
    table = branchline.Table(columns=["a"], data=[[1], [2]])
    with pytest.raises(ValueError, match=r"add_column\('b'\): 3 values for a table of 2 rows"):
        table.add_column("b", [1, 2, 3])
    with pytest.raises(KeyError, match="no column 'z'"):
        table.get_column("z")


def test_a_fork_sees_its_sources_images_up_to_the_branch_step(backend: Backend, quiet: dict[str, Any]) -> None:
    source = branchline.init(project="media", id="src", settings=quiet)
    for step in range(5):
        source.log({"img": branchline.Image(np.full((4, 4), step * 10, np.uint8)), "step_value": float(step)})
    source.finish()
    fork = branchline.init(project="media", id="fk", fork_from="src?_step=2", settings=quiet)
    for step in range(3, 5):
        fork.log({"img": branchline.Image(np.full((4, 4), 200 + step, np.uint8))})
    fork.finish()

    src_run, fork_run = logged(backend, source), logged(backend, fork)
    src_images, fork_images = history(src_run, "img"), history(fork_run, "img")
    assert sorted(fork_images) == [0, 1, 2, 3, 4]
    assert all(fork_images[s] == src_images[s] for s in range(3))
    assert fork_images[3] != src_images[3]
    values = {s: int(pixels(fork_run, d)[0, 0]) for s, d in fork_images.items()}
    assert values == {0: 0, 1: 10, 2: 20, 3: 203, 4: 204}


def test_a_failed_encoding_is_reported_once_and_training_goes_on(
    backend: Backend, tmp_path: Path, quiet: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    registry = branchline.sdk.lifecycle.registry
    errors_before = registry.writer_errors
    run = branchline.init(project="media", settings={**quiet, "quiet": False})
    for step in range(3):
        run.log({"bad": branchline.Image(str(broken)), "good": branchline.Image(np.zeros((2, 2), np.uint8)), "x": step})
    run.finish()
    err = capfd.readouterr().err
    assert err.count("could not store the image logged as 'bad'") == 1, err
    assert registry.writer_errors == errors_before + 1  # reported once, for all three steps
    registry.writer_errors = errors_before  # expected here: the fixture checks for unexpected ones
    api_run = logged(backend, run)
    assert history(api_run, "x") == {0: 0, 1: 1, 2: 2}
    assert all(d["_type"] == "image-file" for d in history(api_run, "good").values())
    assert all(v is None for v in history(api_run, "bad").values())


def test_a_matplotlib_figure_is_logged_as_an_image(backend: Backend, quiet: dict[str, Any]) -> None:
    rgba = np.random.default_rng(3).integers(0, 256, (6, 9, 4), dtype=np.uint8)

    class Canvas:
        def draw(self) -> None:
            pass

        def buffer_rgba(self) -> memoryview:
            return memoryview(rgba)

    class Figure:  # matplotlib is not installed here: the same surface `log()` uses
        __module__ = "matplotlib.figure"
        canvas = Canvas()

        def savefig(self, *args: Any) -> None:
            raise AssertionError("log() renders through the canvas, never savefig")

    run = branchline.init(project="media", settings=quiet)
    run.log({"chart": Figure()})
    run.finish()
    api_run = logged(backend, run)
    descriptor = next(iter(api_run.scan_history()))["chart"]
    np.testing.assert_array_equal(pixels(api_run, descriptor), rgba)


@pytest.mark.embedded_only("checks the training process's own imports")
def test_logging_an_image_encodes_nothing_in_the_training_process(tmp_path: Path) -> None:
    from tests.conftest import run_python

    done = run_python(
        """
        import sys, numpy as np, branchline
        run = branchline.init(project="p", settings={"quiet": True, "x_disable_stats": True, "console": "off"})
        run.log({"img": branchline.Image(np.zeros((224, 224, 3), np.uint8)), "t": branchline.Table(data=[[1, 2, 3]])})
        run.finish()
        assert "PIL" not in sys.modules, "PIL was imported on the training side"
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.embedded_only("offline runs are synced into the local store")
def test_offline_media_are_stored_when_synced(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import run_python

    done = run_python(
        """
        import numpy as np, branchline
        run = branchline.init(project="off", id="o1", mode="offline", settings={"quiet": True, "x_disable_stats": True, "console": "off"})
        run.log({"img": branchline.Image(np.full((3, 3), 7, np.uint8))})
        run.summary["best"] = branchline.Image(np.full((2, 2), 9, np.uint8))
        run.finish()
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    synced = subprocess.run(
        [sys.executable, "-m", "branchline", "sync"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert synced.returncode == 0, synced.stderr
    api = branchline.Api(overrides={"store_url": f"sqlite:///{tmp_path / 'branchline' / 'store.db'}"})
    run = api.runs("off")[0]
    descriptor = next(iter(run.scan_history()))["img"]
    assert descriptor["_type"] == "image-file"
    assert run.media(descriptor)[:8] == b"\x89PNG\r\n\x1a\n"
    assert int(pixels(run, run.summary["best"])[0, 0]) == 9  # set on the summary directly, stored by sync
    api.close()


def test_the_writer_stage_retries_uploads_and_keeps_sequence_numbers(tmp_path: Path, monkeypatch: Any) -> None:
    from branchline.sdk.media import stage as stage_module
    from branchline.sdk.media.prepare import emit
    from branchline.vocab import RecordKind

    records: list[list[Any]] = []

    def write(kind: int, *fields: Any) -> int:
        records.append([len(records) + 1, int(kind), *fields])
        return len(records)

    ref = emit(write, "img", 4, branchline.Image(np.zeros((2, 2), np.uint8)))
    records.append([len(records) + 1, int(RecordKind.HISTORY), 4, 0.0, 0.0, {"img": ref}])
    calls: list[int] = []

    def upload(files: list[tuple[str, Path, str]]) -> None:
        calls.append(len(files))
        if len(calls) == 1:
            raise OSError("the server is down")

    messages: list[str] = []
    clock = [100.0]
    monkeypatch.setattr(stage_module.time, "monotonic", lambda: clock[0])
    stage = stage_module.MediaStage(tmp_path, upload, messages.append)
    out = stage.transform(records)
    assert [r[:2] for r in out] == [[1, int(RecordKind.FILE)], [2, int(RecordKind.HISTORY)]]
    path = out[0][2]
    assert out[1][5]["img"]["path"] == path and (tmp_path / path).is_file()
    assert calls == [1] and stage.unsent and "will retry" in messages[0]
    stage.transform([])  # too soon: no new attempt
    assert calls == [1]
    clock[0] += 6
    stage.transform([])
    assert calls == [1, 1] and not stage.unsent and len(messages) == 1


def test_media_set_on_the_summary_directly_are_stored_as_run_files(backend: Backend, quiet: dict[str, Any]) -> None:
    best = np.random.default_rng(4).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    cell = np.full((3, 3), 77, np.uint8)
    run = branchline.init(project="media", settings=quiet)
    run.log({"loss": 0.5})
    run.summary["best_image"] = branchline.Image(best, caption="best")
    run.summary["table"] = branchline.Table(columns=["n", "img"], data=[[1, branchline.Image(cell)]])
    run.summary["hist"] = branchline.Histogram([1.0, 2.0, 2.0], num_bins=2)
    run.summary.update({"nested": {"examples": [branchline.Image(cell), branchline.Image(cell + 1)]}})
    run.finish()

    api_run = logged(backend, run)
    summary = api_run.summary
    image = summary["best_image"]
    assert image["_type"] == "image-file" and image["caption"] == "best" and (image["width"], image["height"]) == (5, 6)
    assert image["path"].startswith("media/images/best_image_") and image["path"] in {
        f["path"] for f in api_run.files()
    }
    np.testing.assert_array_equal(pixels(api_run, image), best)
    frame = api_run.table(summary["table"])
    assert list(frame["n"]) == [1]
    np.testing.assert_array_equal(pixels(api_run, frame["img"][0]), cell)
    assert summary["hist"] == {"_type": "histogram", "values": [1, 2], "bins": [1.0, 1.5, 2.0]}
    examples = summary["nested"]["examples"]
    assert examples["_type"] == "images/separated" and examples["count"] == 2
    assert [int(pixels(api_run, d)[0, 0]) for d in images_of(examples)] == [77, 78]
    assert summary["loss"] == 0.5 and history(api_run, "best_image") == {}  # the summary only, not history
