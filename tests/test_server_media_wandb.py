"""The media routes serve what the real wandb client logged as they serve branchline's own media.

The wandb client logs a table as a run file of plain cells and keeps the whole table, image cells
included, in a `run_table` artifact. The wandb client (its own venv) logs into a real `branchline
server`; the routes are then read in-process (httpx.ASGITransport) over the same store: the table's
file URL from `POST /api/v1/media` answers the whole table, its image cells load by their URLs
(each pinned to the epoch's image), the Files tab's read of the same run file (no descriptor at
hand) answers the whole table too, and a list of images keeps its boxes and masks.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from branchline.server import ServerSettings, create_app
from branchline.store import open_store
from tests.test_server_api import SyncApi
from tests.test_wandb_client import _need_client, _serve, run_clients

pytestmark = pytest.mark.timeout(300)

#: What the wandb client logs: a table with image cells, a table per epoch whose plain cells are
#: equal (only the images differ), and a list of images with boxes and masks.
SCRIPT = """
import numpy as np
import wandb

run = wandb.init(project="media", id="by-wandb")
table = wandb.Table(columns=["id", "image", "label"])
for i in range(3):
    table.add_data(i, wandb.Image(np.full((4, 4, 3), 40 * i + 20, dtype=np.uint8)), f"l{i}")
labels = {1: "cat", 2: "dog"}
def boxes(x):
    return {"pred": {"box_data": [{"position": {"minX": x, "maxX": x + 0.4, "minY": 0.2, "maxY": 0.6},
                                  "class_id": 1, "box_caption": "cat"}], "class_labels": labels}}
rgb = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
mask = (np.arange(24 * 32).reshape(24, 32) % 3).astype(np.uint8)
run.log({
    "tab": table,
    "examples": [
        wandb.Image(rgb, caption="a", boxes=boxes(0.1), masks={"seg": {"mask_data": mask, "class_labels": labels}}),
        wandb.Image(rgb[::-1].copy(), caption="b", boxes=boxes(0.5), masks={"seg": {"mask_data": mask[::-1].copy(), "class_labels": labels}}),
    ],
})
for epoch in range(2):
    per_epoch = wandb.Table(columns=["id", "image"])
    per_epoch.add_data(0, wandb.Image(np.full((2, 2), 100 + epoch, dtype=np.uint8)))
    run.log({"epoch_tab": per_epoch})
run.finish()
"""


def log_with_wandb(root: Path, script: str = SCRIPT) -> None:
    """The wandb client logs `script` into a `branchline server` over `root/branchline/store.db`
    (where `branchline ui --dir root` finds it)."""
    _need_client()
    (root / "branchline").mkdir(parents=True, exist_ok=True)
    with _serve(f"sqlite:///{root / 'branchline' / 'store.db'}", root, []) as server:
        run_clients([script], server)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("wandb-media-routes")
    log_with_wandb(root)
    url = f"sqlite:///{root / 'branchline' / 'store.db'}"
    store = open_store(url)
    view = store.get_run("alice", "media", "by-wandb")
    store.close()
    assert view is not None
    client = SyncApi(create_app(ServerSettings(store_url=url, ui_dist=None)))
    yield {"api": client, "inc": view.incarnation_id}
    client.close()


def _values(world: dict[str, Any], key: str) -> list[dict[str, Any]]:
    response = world["api"].post("/api/v1/media", json={"incarnations": [world["inc"]], "key": key})
    assert response.status_code == 200, response.text
    return [s["value"] for s in response.json()["runs"][0]["steps"]]


def _pixels(world: dict[str, Any], url: str) -> np.ndarray:
    response = world["api"].get(url)
    assert response.status_code == 200, (url, response.text)
    assert response.headers["content-type"] == "image/png"
    with PILImage.open(io.BytesIO(response.content)) as picture:
        return np.asarray(picture)


def _table(world: dict[str, Any], url: str) -> dict[str, Any]:
    response = world["api"].get(url)
    assert response.status_code == 200, (url, response.text)
    assert response.headers["content-type"].startswith("application/json")
    return dict(response.json())


def test_a_wandb_client_table_is_served_whole_with_its_image_cells(world: dict[str, Any]) -> None:
    (value,) = _values(world, "tab")
    assert value["artifact_path"].startswith("wandb-client-artifact://")
    assert "artifact_path=" in value["url"]
    table = _table(world, value["url"])
    assert table["columns"] == ["id", "image", "label"]
    assert [[row[0], row[2]] for row in table["data"]] == [[0, "l0"], [1, "l1"], [2, "l2"]]
    for i, row in enumerate(table["data"]):
        cell = row[1]
        assert cell["_type"] == "image-file" and cell["url"].startswith(f"/api/v1/media/files/{world['inc']}/")
        assert f"sha256={cell['sha256']}" in cell["url"]
        assert (_pixels(world, cell["url"]) == 40 * i + 20).all()
        # Resolved by path alone too, as the Files tab's table does for a cell without a URL.
        assert (_pixels(world, cell["url"].partition("?")[0]) == 40 * i + 20).all()


def test_each_epochs_table_reads_its_own_images(world: dict[str, Any]) -> None:
    values = _values(world, "epoch_tab")
    assert len(values) == 2
    seen = []
    for value in values:
        (row,) = _table(world, value["url"])["data"]
        seen.append(int(_pixels(world, row[1]["url"])[0, 0]))
    assert seen == [100, 101]


def test_the_files_tab_reads_the_table_run_file_whole(world: dict[str, Any]) -> None:
    (value,) = _values(world, "tab")
    plain = world["api"].get(f"/api/v1/media/files/{world['inc']}/{value['path']}?inline=true")
    assert plain.status_code == 200
    full = plain.json()
    assert full["data"][2][1]["_type"] == "image-file", "the run file's plain cells, not the whole table"
    # The run file itself stays as the client wrote it (downloads are faithful).
    runs_base = "/api/v1/runs/alice/media/by-wandb"
    raw = world["api"].get(f"{runs_base}/files/{value['path']}")
    assert raw.status_code == 200 and raw.json() != full


def test_a_missing_media_file_is_still_a_404(world: dict[str, Any]) -> None:
    response = world["api"].get(f"/api/v1/media/files/{world['inc']}/media/images/none.png")
    assert response.status_code == 404
    (value,) = _values(world, "tab")
    cell = _table(world, value["url"])["data"][0][1]
    wrong = world["api"].get(f"{cell['url'].partition('?')[0]}?sha256={'0' * 64}")
    assert wrong.status_code == 404


def test_a_list_of_images_keeps_its_boxes_and_masks(world: dict[str, Any]) -> None:
    (value,) = _values(world, "examples")
    assert value["_type"] == "images/separated"
    assert [len(value["images"]), value["captions"]] == [2, ["a", "b"]]
    assert set(value["all_boxes"][0]) == {"pred"} and set(value["all_masks"][1]) == {"seg"}
    box = value["all_boxes"][1]["pred"]
    assert box["_type"] == "boxes2D" and "url" in box
    assert box_data(world, box)[0]["box_caption"] == "cat"
    mask = value["all_masks"][0]["seg"]
    assert mask["_type"] == "mask" and _pixels(world, mask["url"]).shape == (24, 32)
    for image in value["images"]:
        assert _pixels(world, image["url"]).shape == (24, 32, 3)


def box_data(world: dict[str, Any], box: dict[str, Any]) -> list[dict[str, Any]]:
    response = world["api"].get(box["url"])
    assert response.status_code == 200, response.text
    return list(response.json()["box_data"])
