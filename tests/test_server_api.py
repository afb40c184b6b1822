"""The web app's HTTP API, in-process through httpx.ASGITransport, over a store filled by the real SDK.

The SDK runs in a child process (as a training script would), so console capture, system metrics,
files and alerts are the real thing; every endpoint is then read and, where it writes, checked
against what the store holds afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from fastapi import FastAPI

from branchline.cli.serve import is_loopback, server, ui
from branchline.server import ServerSettings, create_app
from branchline.server.models import (
    ConsoleLog,
    FileList,
    KeysResponse,
    ProjectDetail,
    ProjectList,
    RunDetail,
    RunList,
    SeriesResponse,
)

SEED = textwrap.dedent(
    """
    import json, math, sys, time
    import branchline

    root = sys.argv[1]
    common = {"quiet": True}
    ids = {}

    a = branchline.init(project="alpha", dir=root, name="alpha-base", config={"lr": 0.1, "opt": "adam"},
                        tags=["base"], group="g1", job_type="train",
                        settings={**common, "x_stats_sampling_interval": 0.1})
    for s in range(100):
        a.log({"loss": 50.0 if s == 37 else 1.0 / (s + 1), "acc": s / 100, "val/loss": 2.0 / (s + 1)})
        if s % 25 == 0:
            print(f"\\x1b[32mepoch {s // 25}\\x1b[0m loss={1.0 / (s + 1):.3f}", flush=True)
    time.sleep(0.6)
    with open("notes.txt", "w") as fh:
        fh.write("hello from the run\\n")
    a.save("notes.txt", policy="now")
    a.alert("Loss spike", "loss hit 50 at step 37", level="WARN")
    ids["alpha"] = {"run_id": a.id, "first_incarnation": a._start.incarnation_id}
    a.finish()

    f = branchline.init(project="alpha", dir=root, name="alpha-fork", fork_from=f"{a.id}?_step=40",
                        settings=common)
    for s in range(41, 60):
        f.log({"loss": 0.01})
    ids["fork"] = {"run_id": f.id}
    f.finish()

    r = branchline.init(project="alpha", dir=root, id=a.id, resume_from=f"{a.id}?_step=50", settings=common)
    for s in range(51, 70):
        r.log({"loss": 0.02})
    r.finish()

    long = branchline.init(project="alpha", dir=root, name="long-spiky", settings=common)
    for s in range(5000):
        long.log({"loss": 1000.0 if s == 2345 else 0.5 + 0.1 * math.sin(s / 50)})
    ids["long"] = {"run_id": long.id}
    long.finish()

    for name in ("patch-me", "move-me", "delete-me", "clash"):
        v = branchline.init(project="alpha", dir=root, name=name, config={"lr": 0.01}, settings=common,
                            id="clashid1" if name == "clash" else None)
        v.log({"loss": 1.0})
        ids[name] = {"run_id": v.id}
        v.finish()
    twin = branchline.init(project="beta", dir=root, id="clashid1", name="clash-twin", settings=common)
    twin.finish()

    b = branchline.init(project="beta", dir=root, name="beta-one", settings=common)
    b.log({"loss": 3.0})
    ids["beta"] = {"run_id": b.id}
    b.finish()
    print("IDS=" + json.dumps(ids))
    """
)

LOOP = textwrap.dedent(
    """
    import sys, time
    import branchline

    run = branchline.init(project="alpha", dir=sys.argv[1], name="looping", settings={"quiet": True, "heartbeat_seconds": 1})
    print("RUN=" + run.id, flush=True)
    step = 0
    while True:
        run.log({"loss": 1.0 / (step + 1)})
        step += 1
        time.sleep(0.05)
    """
)


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRANCHLINE_", "WANDB_"))}
    env["BRANCHLINE_CONFIG_DIR"] = str(root / ".config")
    return env


class SyncApi:
    """An httpx client on an ASGITransport, with the app's lifespan entered (it opens the store)."""

    def __init__(self, app: FastAPI) -> None:
        self.loop = asyncio.new_event_loop()
        self.lifespan: AbstractAsyncContextManager[Any] = app.router.lifespan_context(app)
        self.loop.run_until_complete(self.lifespan.__aenter__())
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.run_until_complete(self.lifespan.__aexit__(None, None, None))
        self.loop.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store filled by the SDK in a child process; returns its root, URL and the runs' ids."""
    root = tmp_path_factory.mktemp("api-world")
    done = subprocess.run(
        [sys.executable, "-c", SEED, str(root)],
        cwd=root,
        env=_env(root),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("IDS="))
    ids = json.loads(line[4:])
    url = f"sqlite:///{root / 'branchline' / 'store.db'}"
    from branchline.store import open_store

    with open_store(url) as store:
        entity = store.list_projects()[0]["entity"]
    return {"root": root, "url": url, "ids": ids, "entity": entity}


@pytest.fixture(scope="module")
def api(world: dict[str, Any]) -> Iterator[SyncApi]:
    client = SyncApi(create_app(ServerSettings(store_url=world["url"], ui_dist=None)))
    yield client
    client.close()


def _run_url(world: dict[str, Any], name: str, project: str = "alpha") -> str:
    return f"/api/v1/runs/{world['entity']}/{project}/{world['ids'][name]['run_id']}"


def assert_error(response: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """The one error shape: {"error": {"code", "message", "field"?}} with the expected status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if field is not None:
        assert error.get("field") == field, error
    return dict(error)


# -- projects and runs ---------------------------------------------------------------------------


def test_health_and_openapi(api: SyncApi) -> None:
    assert api.get("/api/v1/health").json()["ok"] is True
    schema = api.get("/api/v1/openapi.json").json()
    paths = set(schema["paths"])
    for path in (
        "/api/v1/projects",
        "/api/v1/projects/{entity}/{project}",
        "/api/v1/runs/{entity}/{project}",
        "/api/v1/runs/{entity}/{project}/{run_id}",
        "/api/v1/runs/{entity}/{project}/{run_id}/stop",
        "/api/v1/runs/{entity}/{project}/{run_id}/move",
        "/api/v1/runs/{entity}/{project}/{run_id}/incarnations/{incarnation_id}",
        "/api/v1/runs/{entity}/{project}/{run_id}/keys",
        "/api/v1/runs/{entity}/{project}/{run_id}/series",
        "/api/v1/runs/{entity}/{project}/{run_id}/logs",
        "/api/v1/runs/{entity}/{project}/{run_id}/files",
        "/api/v1/runs/{entity}/{project}/{run_id}/alerts",
        "/api/v1/runs/{entity}/{project}/{run_id}/artifacts",
        "/api/v1/runs/{entity}/{project}/{run_id}/incarnations/{incarnation_id}/series",
        "/api/v1/series",
        "/api/v1/series/keys",
    ):
        assert path in paths, path
    assert "ErrorBody" in schema["components"]["schemas"]


def test_projects_list_counts_and_search(api: SyncApi, world: dict[str, Any]) -> None:
    body = ProjectList.model_validate(api.get("/api/v1/projects").json())
    by_name = {p.name: p for p in body.projects}
    assert by_name["alpha"].run_count == 7
    assert by_name["beta"].run_count == 2
    assert by_name["alpha"].last_activity is not None
    assert by_name["alpha"].last_activity >= by_name["alpha"].created_at
    found = api.get("/api/v1/projects", params={"search": "BET"}).json()["projects"]
    assert [p["name"] for p in found] == ["beta"]


def test_project_detail_columns(api: SyncApi, world: dict[str, Any]) -> None:
    detail = ProjectDetail.model_validate(api.get(f"/api/v1/projects/{world['entity']}/alpha").json())
    assert "lr" in detail.columns.config and "opt" in detail.columns.config
    assert "loss" in detail.columns.summary
    assert not any(k.startswith("_") for k in detail.columns.summary)
    assert detail.state_counts.get("finished", 0) >= 6
    assert_error(api.get(f"/api/v1/projects/{world['entity']}/nope"), 404)


def test_project_privacy_toggle(api: SyncApi, world: dict[str, Any]) -> None:
    from branchline.store import open_store

    url = f"/api/v1/projects/{world['entity']}/beta"
    assert api.get(url).json()["public"] is False
    made = ProjectDetail.model_validate(api.patch(url, json={"public": True}).json())
    assert made.public and made.name == "beta"
    with open_store(world["url"]) as store:
        assert store.project_is_public(world["entity"], "beta")
        assert not store.project_is_public(world["entity"], "alpha")
    assert api.get(url).json()["public"] is True
    assert api.patch(url, json={"public": False}).json()["public"] is False
    with open_store(world["url"]) as store:
        assert not store.project_is_public(world["entity"], "beta")
    assert_error(api.patch(f"/api/v1/projects/{world['entity']}/nope", json={"public": True}), 404, "project")
    assert_error(api.patch(url, json={"public": "sometimes"}), 422)
    assert_error(api.patch(url, json={"public": True, "extra": 1}), 422)


def test_runs_list_paging_sort_search_filter(api: SyncApi, world: dict[str, Any]) -> None:
    base = f"/api/v1/runs/{world['entity']}/alpha"
    everything = RunList.model_validate(api.get(base, params={"limit": 100}).json())
    assert everything.total == 7 and len(everything.runs) == 7
    newest_first = [r.run_id for r in everything.runs]
    oldest_first = [r["run_id"] for r in api.get(base, params={"order": "+created_at", "limit": 100}).json()["runs"]]
    assert oldest_first == list(reversed(newest_first))
    page1 = api.get(base, params={"limit": 3, "offset": 0}).json()
    page2 = api.get(base, params={"limit": 3, "offset": 3}).json()
    assert page1["total"] == page2["total"] == 7
    assert [r["run_id"] for r in page1["runs"] + page2["runs"]] == newest_first[:6]

    found = api.get(base, params={"search": "FORK"}).json()
    assert [r["name"] for r in found["runs"]] == ["alpha-fork"] and found["total"] == 1

    lr = api.get(base, params={"filters": json.dumps({"config.lr": 0.1})}).json()
    assert {r["name"] for r in lr["runs"]} == {"alpha-base", "alpha-fork"}

    by_loss = api.get(base, params={"order": "-summary_metrics.loss", "limit": 100}).json()["runs"]
    losses = [r["summary"]["loss"] for r in by_loss if "loss" in r["summary"]]
    assert losses == sorted(losses, reverse=True)

    assert api.get(base, params={"state": "running"}).json()["total"] == 0
    assert api.get(base, params={"state": "finished,killed"}).json()["total"] == 7


def test_run_detail_overview_fields(api: SyncApi, world: dict[str, Any]) -> None:
    detail = RunDetail.model_validate(api.get(_run_url(world, "alpha")).json())
    assert detail.name == "alpha-base"
    assert detail.tags == ["base"] and detail.group == "g1" and detail.job_type == "train"
    assert detail.config == {"lr": 0.1, "opt": "adam"}
    assert detail.state == "finished" and detail.exit_code == 0
    assert detail.finished_at is not None and detail.finished_at >= detail.started_at
    assert detail.duration >= 0 and detail.last_step == 69
    assert detail.host and detail.metadata.get("python")
    # the rewind: Forked From is the archived incarnation, listed among the incarnations
    assert detail.forked_from is not None
    assert detail.forked_from.kind == "rewind" and detail.forked_from.step == 50
    archived_id = world["ids"]["alpha"]["first_incarnation"]
    assert detail.forked_from.incarnation_id == archived_id and detail.forked_from.archived
    assert [a.incarnation_id for a in detail.archived_incarnations] == [archived_id]
    assert detail.archived_incarnations[0].last_step == 99
    assert [f.run_id for f in detail.forks] == [world["ids"]["fork"]["run_id"]]


def test_fork_detail_links_its_source(api: SyncApi, world: dict[str, Any]) -> None:
    detail = RunDetail.model_validate(api.get(_run_url(world, "fork")).json())
    assert detail.forked_from is not None
    assert detail.forked_from.kind == "fork"
    assert detail.forked_from.run_id == world["ids"]["alpha"]["run_id"]
    assert detail.forked_from.step == 40
    assert detail.archived_incarnations == []


def test_archived_incarnation_is_addressable(api: SyncApi, world: dict[str, Any]) -> None:
    archived_id = world["ids"]["alpha"]["first_incarnation"]
    url = f"{_run_url(world, 'alpha')}/incarnations/{archived_id}"
    detail = RunDetail.model_validate(api.get(url).json())
    assert detail.archived and detail.ordinal == 1 and detail.last_step == 99
    assert detail.incarnation_id == archived_id != detail.current_incarnation_id
    assert [f.run_id for f in detail.forks] == [world["ids"]["fork"]["run_id"]]  # forked from this one
    series = api.get(f"{url}/series", params={"keys": "loss"}).json()["series"][0]
    assert len(series["y"]) == 100 and series["y"][37] == 50.0
    current = api.get(f"{_run_url(world, 'alpha')}/series", params={"keys": "loss"}).json()["series"][0]
    assert current["x"][-1] == 69 and current["y"][-1] == 0.02 and current["y"][37] == 50.0
    # an incarnation of another run is not this run's
    fork_inc = api.get(_run_url(world, "fork")).json()["incarnation_id"]
    assert_error(api.get(f"{_run_url(world, 'alpha')}/incarnations/{fork_inc}"), 404, "incarnation_id")
    assert_error(api.get(f"{_run_url(world, 'alpha')}/incarnations/nothere"), 404)


# -- history ------------------------------------------------------------------------------------------


def _incarnation(api: SyncApi, world: dict[str, Any], name: str, project: str = "alpha") -> str:
    return str(api.get(_run_url(world, name, project)).json()["incarnation_id"])


def test_history_keys(api: SyncApi, world: dict[str, Any]) -> None:
    keys = KeysResponse.model_validate(api.get(f"{_run_url(world, 'alpha')}/keys").json()).keys
    assert {"loss", "acc", "val/loss", "_runtime", "_timestamp"} <= set(keys)
    assert keys["loss"].numeric and keys["loss"].last_step == 69
    union = api.post(
        "/api/v1/series/keys",
        json={
            "incarnations": [_incarnation(api, world, "alpha"), _incarnation(api, world, "beta", "beta")],
            "stream": 0,
        },
    ).json()["keys"]
    assert union["loss"]["runs"] == 2 and union["acc"]["runs"] == 1


def test_series_follows_the_fork_lineage(api: SyncApi, world: dict[str, Any]) -> None:
    body = SeriesResponse.model_validate(
        api.post("/api/v1/series", json={"incarnations": [_incarnation(api, world, "fork")], "keys": ["loss"]}).json()
    )
    series = body.series[0]
    assert series.x == [float(s) for s in range(60)]
    assert series.y[:41] == [50.0 if s == 37 else 1.0 / (s + 1) for s in range(41)]
    assert series.y[41:] == [0.01] * 19
    assert series.count == 60 and not series.sampled and series.last_step == 59


def test_group_series_mean_and_band_on_aligned_steps(api: SyncApi, world: dict[str, Any]) -> None:
    alpha, fork, long = (_incarnation(api, world, name) for name in ("alpha", "fork", "long"))
    body = api.post(
        "/api/v1/series/groups",
        json={
            "groups": [{"name": "pair", "incarnations": [alpha, fork]}, {"name": "long", "incarnations": [long]}],
            "keys": ["loss"],
            "buckets": 1000,
        },
    ).json()
    pair, solo = body["series"]
    assert pair["group"] == "pair" and pair["runs"] == 2 and pair["count"] == 70 and not pair["sampled"]
    assert pair["x"] == [float(s) for s in range(70)]

    def original(s: int) -> float:
        return 50.0 if s == 37 else 1.0 / (s + 1)

    # alpha after its rewind: the original to step 50, then 0.02; the fork: the original to 40, then 0.01.
    a = [original(s) if s <= 50 else 0.02 for s in range(70)]
    f: list[float | None] = [original(s) if s <= 40 else 0.01 for s in range(60)] + [None] * 10
    for s in range(70):
        values = [v for v in (a[s], f[s]) if v is not None]
        assert pair["mean"][s] == pytest.approx(sum(values) / len(values))
        assert pair["min"][s] == pytest.approx(min(values)) and pair["max"][s] == pytest.approx(max(values))
    assert solo["runs"] == 1 and solo["count"] == 5000

    reduced = api.post(
        "/api/v1/series/groups",
        json={"groups": [{"name": "all", "incarnations": [alpha, long]}], "keys": ["loss"], "buckets": 50},
    ).json()["series"][0]
    assert reduced["sampled"] and reduced["count"] == 5000 and len(reduced["x"]) == 50
    assert reduced["x"] == sorted(reduced["x"]) and reduced["x"][0] == 0.0
    assert max(v for v in reduced["max"] if v is not None) == 1000.0  # the spike survives in the band
    assert all(lo <= m <= hi for lo, m, hi in zip(reduced["min"], reduced["mean"], reduced["max"], strict=True))
    assert_error(
        api.post("/api/v1/series/groups", json={"groups": [{"name": "x", "incarnations": ["nope"]}], "keys": ["loss"]}),
        404,
        "incarnations.0",
    )
    assert_error(api.post("/api/v1/series/groups", json={"groups": [], "keys": ["loss"]}), 422)


def test_series_downsampling_keeps_the_spike(api: SyncApi, world: dict[str, Any]) -> None:
    inc = _incarnation(api, world, "long")
    body = api.post("/api/v1/series", json={"incarnations": [inc], "keys": ["loss"], "buckets": 50}).json()
    series = body["series"][0]
    assert series["count"] == 5000 and series["sampled"] is True
    assert len(series["x"]) == len(series["y"]) <= 102
    assert max(series["y"]) == 1000.0
    assert series["x"][series["y"].index(1000.0)] == 2345.0
    assert series["x"][0] == 0.0 and series["x"][-1] == 4999.0
    assert series["x"] == sorted(series["x"])
    assert min(series["y"]) == pytest.approx(0.4, abs=1e-3)  # the troughs survive too


def test_series_x_axes(api: SyncApi, world: dict[str, Any]) -> None:
    inc = _incarnation(api, world, "alpha")
    for axis in ("_runtime", "_timestamp"):
        series = api.post("/api/v1/series", json={"incarnations": [inc], "keys": ["loss"], "x": axis}).json()["series"][
            0
        ]
        assert len(series["x"]) == len(series["y"]) == 70
        assert series["x"] == sorted(series["x"])
    by_acc = api.post("/api/v1/series", json={"incarnations": [inc], "keys": ["val/loss"], "x": "acc"}).json()
    series = by_acc["series"][0]
    # acc exists only up to step 50 in this incarnation's view; val/loss likewise: joined on the step
    assert series["x"] == [s / 100 for s in range(51)]
    assert series["y"] == [2.0 / (s + 1) for s in range(51)]
    ranged = api.post(
        "/api/v1/series", json={"incarnations": [inc], "keys": ["loss"], "min_step": 10, "max_step": 19}
    ).json()["series"][0]
    assert ranged["x"] == [float(s) for s in range(10, 20)]


def test_system_metrics_stream(api: SyncApi, world: dict[str, Any]) -> None:
    archived = world["ids"]["alpha"]["first_incarnation"]
    url = f"{_run_url(world, 'alpha')}/incarnations/{archived}"
    keys = api.get(f"{url}/keys", params={"stream": 1}).json()["keys"]
    metrics = [k for k in keys if not k.startswith("_")]
    assert metrics, keys
    series = api.post(
        "/api/v1/series", json={"incarnations": [archived], "keys": [metrics[0]], "stream": 1, "x": "_runtime"}
    ).json()["series"][0]
    assert len(series["y"]) >= 2 and all(x is not None for x in series["x"])


# -- telemetry ----------------------------------------------------------------------------------------


def test_console_logs_and_incremental_polling(api: SyncApi, world: dict[str, Any]) -> None:
    archived = world["ids"]["alpha"]["first_incarnation"]
    url = f"{_run_url(world, 'alpha')}/incarnations/{archived}/logs"
    log = ConsoleLog.model_validate(api.get(url).json())
    texts = [line.text for line in log.lines]
    assert "\x1b[32mepoch 0\x1b[0m loss=1.000" in texts
    assert sum("epoch" in t for t in texts) == 4
    tail = api.get(url, params={"since": log.lines[2].line_no}).json()
    assert [line["line_no"] for line in tail["lines"]] == [line.line_no for line in log.lines[2:]]
    assert api.get(url, params={"since": log.next_line}).json()["lines"] == []
    assert_error(api.get(url, params={"since": -1}), 422, "since")


def test_files_list_download_and_safety(api: SyncApi, world: dict[str, Any]) -> None:
    archived = world["ids"]["alpha"]["first_incarnation"]
    url = f"{_run_url(world, 'alpha')}/incarnations/{archived}/files"
    files = FileList.model_validate(api.get(url).json()).files
    notes = next(f for f in files if f.path == "notes.txt")
    assert notes.available and notes.size == len("hello from the run\n")
    download = api.get(f"{url}/notes.txt")
    assert download.status_code == 200 and download.text == "hello from the run\n"
    assert "attachment" in download.headers["content-disposition"]
    inline = api.get(f"{url}/notes.txt", params={"inline": "true"})
    assert inline.headers["content-type"].startswith("text/plain") and "content-disposition" not in inline.headers
    assert_error(api.get(f"{url}/missing.txt"), 404, "path")
    assert api.get(f"{url}/..%2F..%2Fstore.db").status_code in (404, 422)


def test_alerts_and_artifacts(api: SyncApi, world: dict[str, Any]) -> None:
    archived = world["ids"]["alpha"]["first_incarnation"]
    url = f"{_run_url(world, 'alpha')}/incarnations/{archived}"
    alerts = api.get(f"{url}/alerts").json()["alerts"]
    assert [(a["title"], a["level"]) for a in alerts] == [("Loss spike", "WARN")]
    artifacts = api.get(f"{_run_url(world, 'alpha')}/artifacts").json()
    assert artifacts["logged"] == [] and artifacts["used"] == []


# -- edits ----------------------------------------------------------------------------------------------


def test_patch_run(api: SyncApi, world: dict[str, Any]) -> None:
    url = _run_url(world, "patch-me")
    body = {"name": "patched", "notes": "a note", "tags": ["x", "y", "x"], "group": "grp", "job_type": "eval"}
    detail = api.patch(url, json=body).json()
    assert (detail["name"], detail["notes"], detail["tags"], detail["group"], detail["job_type"]) == (
        "patched",
        "a note",
        ["x", "y"],
        "grp",
        "eval",
    )
    assert api.get(url).json()["notes"] == "a note"
    assert api.patch(url, json={"tags": []}).json()["tags"] == []


def test_move_run(api: SyncApi, world: dict[str, Any]) -> None:
    url = _run_url(world, "move-me")
    moved = api.post(f"{url}/move", json={"project": "gamma"})
    assert moved.status_code == 200 and moved.json()["project"] == "gamma"
    assert_error(api.get(url), 404)
    assert api.get(_run_url(world, "move-me", project="gamma")).json()["name"] == "move-me"
    assert "gamma" in {p["name"] for p in api.get("/api/v1/projects").json()["projects"]}


def test_move_clash_and_bad_names(api: SyncApi, world: dict[str, Any]) -> None:
    url = _run_url(world, "clash")
    assert_error(api.post(f"{url}/move", json={"project": "bad/name"}), 422, "project")
    assert_error(api.post(f"{url}/move", json={"project": ""}), 422, "project")
    assert_error(api.post(f"{url}/move", json={"project": "x", "extra": 1}), 422, "extra")
    # beta already has a run with this id
    error = assert_error(api.post(f"{url}/move", json={"project": "beta"}), 409, "project")
    assert "clashid1" in error["message"]
    assert api.get(url).json()["project"] == "alpha"


def test_delete_run(api: SyncApi, world: dict[str, Any]) -> None:
    url = _run_url(world, "delete-me")
    assert api.delete(url).json() == {"ok": True}
    assert_error(api.get(url), 404)
    assert_error(api.delete(url), 404)


def test_stop_running_run_ends_killed(api: SyncApi, world: dict[str, Any]) -> None:
    root: Path = world["root"]
    proc = subprocess.Popen(
        [sys.executable, "-c", LOOP, str(root)],
        cwd=root,
        env=_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("RUN="), proc.stderr.read() if proc.stderr else line
        run_id = line.strip()[4:]
        url = f"/api/v1/runs/{world['entity']}/alpha/{run_id}"
        deadline = time.monotonic() + 20
        while api.get(url).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert api.get(url).json()["state"] == "running"
        assert_error(api.delete(url), 409, "state")  # running runs are stopped first
        stopped = api.post(f"{url}/stop").json()
        assert stopped["stop_requested"] is True
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while api.get(url).json()["state"] == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        detail = api.get(url).json()
        assert detail["state"] == "killed", detail
        assert_error(api.post(f"{url}/stop"), 409, "state")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- validation: always 4xx with the error shape, never a 500 ------------------------------------------


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"limit": 0}, 422, "limit"),
        ({"limit": "many"}, 422, "limit"),
        ({"offset": -1}, 422, "offset"),
        ({"filters": "{not json"}, 422, "filters"),
        ({"filters": "[1, 2]"}, 422, "filters"),
        ({"filters": json.dumps({"$bogus": 1})}, 400, "filters"),
        ({"filters": json.dumps({"state": {"$near": 1}})}, 400, "filters"),
        ({"order": "; drop table runs"}, 422, "order"),
        ({"state": "sleeping"}, 422, "state"),
    ],
)
def test_runs_list_validation(
    api: SyncApi, world: dict[str, Any], params: dict[str, Any], status: int, field: str
) -> None:
    assert_error(api.get(f"/api/v1/runs/{world['entity']}/alpha", params=params), status, field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"tags": "not-a-list"}, "tags"),
        ({"name": ""}, "name"),
        ({"unknown": 1}, "unknown"),
        ({"notes": 5}, "notes"),
    ],
)
def test_patch_validation(api: SyncApi, world: dict[str, Any], body: dict[str, Any], field: str) -> None:
    assert_error(api.patch(_run_url(world, "patch-me"), json=body), 422, field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"incarnations": [], "keys": ["loss"]}, "incarnations"),
        ({"incarnations": ["abc"], "keys": []}, "keys"),
        ({"incarnations": ["abc"], "keys": ["loss"], "buckets": 0}, "buckets"),
        ({"incarnations": ["abc"], "keys": ["loss"], "stream": 2}, "stream"),
        ({"incarnations": ["a/b"], "keys": ["loss"]}, "incarnations.0"),
        ({"incarnations": ["abc"], "keys": ["loss"], "min_step": -5}, "min_step"),
        ({"keys": ["loss"]}, "incarnations"),
    ],
)
def test_series_validation(api: SyncApi, body: dict[str, Any], field: str) -> None:
    assert_error(api.post("/api/v1/series", json=body), 422, field)


def test_series_unknown_incarnation_and_bad_json(api: SyncApi, world: dict[str, Any]) -> None:
    known = _incarnation(api, world, "alpha")
    assert_error(
        api.post("/api/v1/series", json={"incarnations": [known, "feedface"], "keys": ["x"]}), 404, "incarnations.1"
    )
    response = api.post("/api/v1/series", content=b"{oops", headers={"content-type": "application/json"})
    assert_error(response, 422)
    assert_error(
        api.post("/api/v1/series", json={"incarnations": [known], "keys": ["loss"], "min_step": 9, "max_step": 3}),
        422,
        "min_step",
    )


def test_not_found_and_methods(api: SyncApi, world: dict[str, Any]) -> None:
    assert_error(api.get(f"/api/v1/runs/{world['entity']}/alpha/nosuchrun"), 404, "run_id")
    assert_error(api.get(f"/api/v1/runs/{world['entity']}/alpha/nosuchrun/logs"), 404)
    assert_error(api.get("/api/v1/no/such/route"), 404)
    assert_error(api.post("/api/v1/projects"), 405)
    assert_error(api.request("PUT", _run_url(world, "alpha")), 405)


# -- serving the web app, read-only mode, CLI guards -------------------------------------------------


def test_serves_the_web_app_with_spa_fallback(tmp_path: Path, world: dict[str, Any]) -> None:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>app</title>")
    (dist / "assets" / "app-123.js").write_text("console.log(1)")
    client = SyncApi(create_app(ServerSettings(store_url=world["url"], ui_dist=dist)))
    try:
        for path in ("/", "/e/p", "/e/p/runs/abc/logs", "/e/p/runs/abc/incarnations/def/workspace"):
            page = client.get(path)
            assert page.status_code == 200 and "<title>app</title>" in page.text, path
            assert page.headers["content-type"].startswith("text/html")
        asset = client.get("/assets/app-123.js")
        assert asset.text == "console.log(1)" and "immutable" in asset.headers["cache-control"]
        assert client.get("/assets/missing.js").status_code == 404
        assert client.get("/../../etc/passwd").text.startswith("<!doctype html>")
        assert_error(client.get("/api/v1/nothing"), 404)
    finally:
        client.close()
    unbuilt = SyncApi(create_app(ServerSettings(store_url=world["url"], ui_dist=tmp_path / "absent")))
    try:
        assert "build-frontend.sh" in unbuilt.get("/").text
    finally:
        unbuilt.close()


def test_read_only_server_refuses_writes(world: dict[str, Any]) -> None:
    client = SyncApi(create_app(ServerSettings(store_url=world["url"], ui_dist=None, read_only=True)))
    try:
        url = _run_url(world, "beta", project="beta")
        assert client.get(url).status_code == 200
        error = assert_error(client.patch(url, json={"notes": "no"}), 403)
        assert error["code"] == "read_only"
        assert_error(client.delete(url), 403)
        assert_error(client.post(f"{url}/move", json={"project": "x"}), 403)
        assert_error(client.patch(f"/api/v1/projects/{world['entity']}/beta", json={"public": True}), 403)
    finally:
        client.close()


def test_cli_refuses_public_hosts_without_auth(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    runner = CliRunner()
    result = runner.invoke(ui, ["--host", "0.0.0.0", "--no-browser", "--dir", str(tmp_path)])
    assert result.exit_code != 0 and "loopback" in result.output
    result = runner.invoke(server, ["--host", "0.0.0.0", "--dir", str(tmp_path)])
    assert result.exit_code != 0 and "0.0.0.0" in result.output


def test_a_nul_in_a_file_path_is_a_clear_422_not_a_500(tmp_path: Path) -> None:
    import branchline

    run = branchline.init(
        project="nul", dir=str(tmp_path), settings={"quiet": True, "x_disable_stats": True, "console": "off"}
    )
    run.finish()

    async def go() -> httpx.Response:
        app = create_app(ServerSettings(store_url=f"sqlite:///{tmp_path / 'branchline' / 'store.db'}"))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.get(f"/api/v1/runs/{run.entity}/nul/{run.id}/files/a%00b")

    response = asyncio.run(go())
    assert response.status_code == 422 and "NUL" in response.json()["error"]["message"]
