"""The media read API in-process (httpx.ASGITransport) over a store the SDK filled in a child
process: media types in the key listings, `POST /api/v1/media` across runs and a fork, and the media
file route that follows the lineage and serves everything sandboxed."""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from branchline.server import ServerSettings, create_app
from branchline.server.routes_media import thin, with_urls
from tests.browser import seed_store
from tests.test_server_api import SyncApi, assert_error

SEED = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import branchline
    from branchline import plot

    root = sys.argv[1]
    quiet = {"quiet": True}
    run = branchline.init(project="m", dir=root, name="src", settings=quiet)
    for step in range(4):
        img = np.full((8, 12, 3), 30 * step, dtype=np.uint8)
        mask = {"truth": {"mask_data": np.eye(8, 12, dtype=np.uint8), "class_labels": {1: "diag"}}}
        row = {"loss": 1.0 / (step + 1), "img": branchline.Image(img, caption=f"s{step}", masks=mask)}
        if step == 3:
            row["pair"] = [branchline.Image(img), branchline.Image(255 - img)]
            row["tab"] = branchline.Table(columns=["a", "pic"], data=[[1, branchline.Image(img)]])
            row["cm"] = plot.confusion_matrix(y_true=[0, 1, 1], preds=[0, 1, 0])
            row["page"] = branchline.Html("<p>hi</p><script>1</script>")
            row["tone"] = branchline.Audio(np.zeros(800, dtype=np.float32), sample_rate=8000)
            row["hist"] = branchline.Histogram([1, 2, 2, 3])
        run.log(row, step=step)
    src = {"run_id": run.id, "incarnation": run._start.incarnation_id}
    run.finish()
    fork = branchline.init(project="m", dir=root, name="fork", fork_from=f"{src['run_id']}?_step=1", settings=quiet)
    fork.log({"img": branchline.Image(np.zeros((8, 12, 3), dtype=np.uint8), caption="own")}, step=2)
    ids = {"src": src, "fork": {"run_id": fork.id, "incarnation": fork._start.incarnation_id}}
    fork.finish()
    print("IDS=" + json.dumps(ids))
    """
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("media-world")
    ids = seed_store(root, SEED)
    client = SyncApi(
        create_app(ServerSettings(store_url=f"sqlite:///{root / 'branchline' / 'store.db'}", ui_dist=None))
    )
    entity = client.get("/api/v1/projects").json()["projects"][0]["entity"]
    yield {"api": client, "ids": ids, "entity": entity}
    client.close()


def _media(world: dict[str, Any], key: str, *names: str, **extra: Any) -> dict[str, Any]:
    incs = [world["ids"][name]["incarnation"] for name in names]
    response = world["api"].post("/api/v1/media", json={"incarnations": incs, "key": key, **extra})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_key_listings_name_the_media_type(world: dict[str, Any]) -> None:
    api, ids = world["api"], world["ids"]
    incs = [ids["src"]["incarnation"], ids["fork"]["incarnation"]]
    keys = api.post("/api/v1/series/keys", json={"incarnations": incs}).json()["keys"]
    assert keys["loss"]["media_type"] is None and keys["loss"]["numeric"]
    assert keys["img"]["media_type"] == "image-file" and keys["img"]["runs"] == 2
    assert keys["pair"]["media_type"] == "images/separated"
    assert keys["tab"]["media_type"] == "table-file" and keys["cm"]["media_type"] == "plot/confusion_matrix"
    assert keys["page"]["media_type"] == "html-file" and keys["tone"]["media_type"] == "audio-file"
    assert keys["hist"]["media_type"] == "histogram"
    own = api.get(f"/api/v1/runs/{world['entity']}/m/{ids['fork']['run_id']}/keys").json()["keys"]
    assert own["img"]["media_type"] == "image-file" and "tab" not in own  # the fork branched before step 3


def test_media_of_two_runs_with_resolvable_files(world: dict[str, Any]) -> None:
    api = world["api"]
    body = _media(world, "img", "src", "fork")
    src, fork = body["runs"]
    assert [s["step"] for s in src["steps"]] == [0, 1, 2, 3] and src["count"] == 4
    # The fork inherits steps 0 and 1 from its source and logged step 2 itself.
    assert [s["step"] for s in fork["steps"]] == [0, 1, 2]
    assert [s["value"]["caption"] for s in fork["steps"]] == ["s0", "s1", "own"]
    for value in [fork["steps"][0]["value"], fork["steps"][2]["value"], src["steps"][3]["value"]]:
        got = api.get(value["url"])
        assert got.status_code == 200 and got.headers["content-type"] == "image/png"
        assert hashlib.sha256(got.content).hexdigest() == value["sha256"]
        assert got.headers["content-security-policy"] == "sandbox"
        assert "attachment" not in got.headers.get("content-disposition", "")
    mask = src["steps"][3]["value"]["masks"]["truth"]
    assert api.get(mask["url"]).status_code == 200 and mask["class_labels"] == {"1": "diag"}
    # The fork's URL for its inherited image names the fork: the route finds the source's file.
    assert world["ids"]["fork"]["incarnation"] in fork["steps"][0]["value"]["url"]


def test_lists_tables_and_limits(world: dict[str, Any]) -> None:
    api = world["api"]
    (pair,) = _media(world, "pair", "src")["runs"]
    images = pair["steps"][0]["value"]["images"]
    assert len(images) == 2 and all(api.get(image["url"]).status_code == 200 for image in images)
    (tab,) = _media(world, "tab", "src")["runs"]
    table = api.get(tab["steps"][0]["value"]["url"]).json()
    assert table["columns"] == ["a", "pic"] and table["data"][0][1]["_type"] == "image-file"
    thinned = _media(world, "img", "src", limit=2)["runs"][0]
    assert thinned["count"] == 4 and [s["step"] for s in thinned["steps"]] == [0, 3]
    ranged = _media(world, "img", "src", min_step=1, max_step=2)["runs"][0]
    assert [s["step"] for s in ranged["steps"]] == [1, 2]
    (hist,) = _media(world, "hist", "src")["runs"]
    assert hist["steps"][0]["value"]["values"] and "url" not in hist["steps"][0]["value"]


def test_html_and_audio_are_served_for_the_browser(world: dict[str, Any]) -> None:
    api = world["api"]
    page = _media(world, "page", "src")["runs"][0]["steps"][0]["value"]
    got = api.get(page["url"])
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/html")
    # Script may run only in an opaque origin: no allow-same-origin, ever.
    policy = got.headers["content-security-policy"]
    assert policy.startswith("sandbox") and "allow-same-origin" not in policy
    tone = _media(world, "tone", "src")["runs"][0]["steps"][0]["value"]
    run_file = f"/api/v1/runs/{world['entity']}/m/{world['ids']['src']['run_id']}/files/{tone['path']}?inline=1"
    got = api.get(run_file)
    assert got.status_code == 200 and got.headers["content-type"] == "audio/wav"
    assert "attachment" not in got.headers.get("content-disposition", "") and got.content[:4] == b"RIFF"
    assert "attachment" in api.get(run_file.replace("?inline=1", "")).headers["content-disposition"]


def test_bad_media_requests(world: dict[str, Any]) -> None:
    api, inc = world["api"], world["ids"]["src"]["incarnation"]
    assert_error(api.post("/api/v1/media", json={"incarnations": ["nope"], "key": "img"}), 404, "incarnations.0")
    bad = {"incarnations": [inc], "key": "img", "min_step": 3, "max_step": 1}
    assert_error(api.post("/api/v1/media", json=bad), 422, "min_step")
    assert_error(api.post("/api/v1/media", json={"incarnations": [inc], "key": "img", "limit": 0}), 422)
    assert_error(api.get(f"/api/v1/media/files/{inc}/media/images/none.png"), 404, "path")
    assert_error(api.get(f"/api/v1/media/files/{inc}/media/%2e%2e/%2e%2e/etc/passwd"), 422, "path")
    assert_error(api.get("/api/v1/media/files/nope/media/images/x.png"), 404, "incarnation_id")
    # A key without values answers each run with none.
    assert _media(world, "never-logged", "src")["runs"] == [{"incarnation_id": inc, "count": 0, "steps": []}]


def test_thin_and_urls_of_wandb_client_lists() -> None:
    values = [(i, i) for i in range(10)]
    assert thin(values, 20) == values and thin(values, 1) == [(9, 9)]
    assert [s for s, _ in thin(values, 4)] == [0, 3, 6, 9]
    boxed = with_urls(
        {"_type": "image-file", "path": "a.png", "boxes": {"p": {"_type": "boxes2D", "path": "b.json"}}}, "i"
    )
    assert boxed["url"].endswith("/i/a.png") and boxed["boxes"]["p"]["url"] == "/api/v1/media/files/i/b.json"
    listed = with_urls({"_type": "images/separated", "filenames": ["media/images/a b.png"], "captions": ["c"]}, "inc1")
    assert listed["images"] == [
        {
            "_type": "image-file",
            "path": "media/images/a b.png",
            "url": "/api/v1/media/files/inc1/media/images/a%20b.png",
            "caption": "c",
        }
    ]
