"""`/api/v1/projects/{entity}/{project}/workspace`: saving, versioning, validating and guarding a layout.

In process through httpx.ASGITransport (tests/test_server_api.py's `SyncApi`), over a store set up
directly: the route never reads runs, so no SDK is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from branchline.server import ServerSettings, create_app
from branchline.store import open_store
from tests.test_server_api import SyncApi, assert_error

URL = "/api/v1/projects/team-a/vision/workspace"


def layout(*panels: dict[str, Any], seen: list[str] | None = None) -> dict[str, Any]:
    return {
        "sections": [{"id": "charts", "name": "Charts", "panels": list(panels)}],
        "seen_keys": seen or [],
    }


LINE = {"id": "p1", "kind": "line", "keys": ["loss", "val/loss"], "w": 2, "h": 1, "smoothing": 0.6, "log_y": True}
MEDIA = {"id": "p2", "kind": "media", "keys": ["samples"], "w": 1, "h": 2}


@pytest.fixture
def local(tmp_path: Path) -> Iterator[SyncApi]:
    """No API keys: the caller is the local user, who may read and write everything."""
    client = SyncApi(create_app(ServerSettings(store_url=f"sqlite:///{tmp_path / 'store.db'}", ui_dist=None)))
    yield client
    client.close()


def test_no_saved_layout_reads_as_the_automatic_one(local: SyncApi) -> None:
    body = local.get(URL).json()
    assert body == {
        "entity": "team-a",
        "project": "vision",
        "view": "project",
        "layout": None,
        "version": 0,
        "updated_at": None,
        "updated_by": None,
    }


def test_save_read_conflict_and_reset(local: SyncApi) -> None:
    saved = local.request("PUT", URL, json={"layout": layout(LINE, MEDIA, seen=["loss"]), "base_version": 0})
    assert saved.status_code == 200, saved.text
    first = saved.json()
    assert first["version"] == 1 and first["updated_at"] > 0
    # Defaults are filled in and settings left unset stay unset (the workspace's apply).
    line, media = first["layout"]["sections"][0]["panels"]
    assert {k: v for k, v in line.items() if v is not None} == LINE and line["x"] is None and line["max_runs"] is None
    assert {k: v for k, v in media.items() if v is not None} == MEDIA
    assert first["layout"]["format"] == 1 and first["layout"]["seen_keys"] == ["loss"]
    assert local.get(URL).json() == first

    # Someone else saved since version 0: refused with the current version named, nothing changed.
    stale = local.request("PUT", URL, json={"layout": layout(), "base_version": 0})
    error = assert_error(stale, 409, "base_version")
    assert error["code"] == "conflict" and "version 1" in error["message"]
    assert local.get(URL).json()["layout"]["sections"][0]["panels"]

    second = local.request("PUT", URL, json={"layout": layout(MEDIA), "base_version": 1}).json()
    assert second["version"] == 2 and [p["id"] for p in second["layout"]["sections"][0]["panels"]] == ["p2"]
    assert local.request("PUT", URL, json={"layout": layout(LINE)}).json()["version"] == 3  # no base: saved anyway

    # The run pages' layout is kept apart from the project's.
    assert local.get(URL, params={"view": "run"}).json()["layout"] is None
    run_saved = local.request("PUT", URL, params={"view": "run"}, json={"layout": layout(MEDIA), "base_version": 0})
    assert run_saved.json()["version"] == 1 and run_saved.json()["view"] == "run"
    assert local.get(URL).json()["version"] == 3

    reset = local.delete(URL)
    assert reset.status_code == 200 and reset.json()["layout"] is None and reset.json()["version"] == 0
    assert local.get(URL).json()["layout"] is None
    assert local.get(URL, params={"view": "run"}).json()["version"] == 1  # untouched


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"kind": "pie"}, "layout.sections.0.panels.0.kind", "line"),
        ({"keys": []}, "layout.sections.0.panels.0.keys", "at least 1"),
        ({"w": 9}, "layout.sections.0.panels.0.w", "less than or equal to 4"),
        ({"smoothing": 1.5}, "layout.sections.0.panels.0.smoothing", "0.99"),
        ({"max_runs": 0}, "layout.sections.0.panels.0.max_runs", "greater than or equal to 1"),
        ({"id": "no spaces"}, "layout.sections.0.panels.0.id", "pattern"),
        ({"kind": "media"}, "layout.sections.0.panels.0", "exactly one key"),
        ({"colour": "red"}, "layout.sections.0.panels.0.colour", "Extra inputs"),
        ({"title": "a\x00b"}, "layout.sections.0.panels.0.title", "NUL"),
    ],
)
def test_a_bad_panel_is_a_422_naming_its_field(local: SyncApi, change: dict[str, Any], field: str, words: str) -> None:
    response = local.request("PUT", URL, json={"layout": layout({**LINE, **change})})
    error = assert_error(response, 422, field)
    assert words in error["message"], error
    assert local.get(URL).json()["layout"] is None


def test_duplicate_ids_and_too_many_or_too_big_layouts_are_refused(local: SyncApi) -> None:
    twice = assert_error(local.request("PUT", URL, json={"layout": layout(LINE, {**MEDIA, "id": "p1"})}), 422)
    assert "two panels have the id 'p1'" in twice["message"]
    # Over the panel limit across sections.
    many = {
        "sections": [
            {"id": f"s{s}", "name": f"S{s}", "panels": [{"id": f"p{s}-{i}", "keys": ["k"]} for i in range(200)]}
            for s in range(3)
        ]
    }
    assert "at most 500 panels" in assert_error(local.request("PUT", URL, json={"layout": many}), 422)["message"]
    # Valid piece by piece, but over the size limit as a whole: a clear 422 on `layout`.
    big = layout(*({"id": f"p{i}", "keys": ["k" * 500, "j" * 500]} for i in range(300)))
    error = assert_error(local.request("PUT", URL, json={"layout": big}), 422, "layout")
    assert "over the limit of 262144" in error["message"]
    # A body far over any layout is refused before it is parsed.
    huge = layout(*({"id": f"p{i}", "keys": ["k" * 512] * 20} for i in range(200)))
    assert assert_error(local.request("PUT", URL, json={"layout": huge}), 413, "body")["code"] == "too_large"
    assert_error(local.request("PUT", URL, params={"view": "sideways"}, json={"layout": layout()}), 422, "view")
    assert_error(local.request("PUT", URL, json={"layout": layout(), "base_version": -1}), 422, "base_version")
    assert local.get(URL).json()["layout"] is None


def test_readers_read_members_save(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as setup:
        keys = {user: (setup.create_user(user), setup.create_api_key(user)[1])[1] for user in ("alice", "bob")}
        setup.create_team("team-a")
        setup.add_team_member("team-a", "alice")
        setup.set_project_public("team-a", "open", True)
    api = SyncApi(create_app(ServerSettings(store_url=url, ui_dist=None, auth_required=True)))
    try:

        def as_(user: str | None) -> dict[str, str]:
            return {"Authorization": f"Bearer {keys[user]}"} if user else {}

        private, public = URL, "/api/v1/projects/team-a/open/workspace"
        body = {"layout": layout(LINE)}
        assert_error(api.get(private), 401)
        assert_error(api.request("PUT", private, json=body), 401)
        assert_error(api.get(private, headers=as_("bob")), 403)
        assert_error(api.request("PUT", private, json=body, headers=as_("bob")), 403)
        saved = api.request("PUT", private, json=body, headers=as_("alice"))
        assert saved.status_code == 200 and saved.json()["updated_by"] == "alice"
        assert api.get(private, headers=as_("alice")).json()["version"] == 1

        # A public project's layout is readable by anyone, and saved or reset only by its members.
        assert api.request("PUT", public, json=body, headers=as_("alice")).status_code == 200
        assert api.get(public).json()["version"] == 1
        assert api.get(public, headers=as_("bob")).json()["layout"]["sections"][0]["panels"][0]["id"] == "p1"
        assert_error(api.request("PUT", public, json=body, headers=as_("bob")), 403)
        assert_error(api.delete(public, headers=as_("bob")), 403)
        assert api.get(public).json()["version"] == 1
    finally:
        api.close()


def test_the_route_is_in_the_openapi_schema(local: SyncApi) -> None:
    schema = local.get("/api/v1/openapi.json").json()
    ops = schema["paths"]["/api/v1/projects/{entity}/{project}/workspace"]
    assert set(ops) == {"get", "put", "delete"}
    assert {"PanelLayout", "SectionLayout", "WorkspaceLayout", "Workspace", "WorkspaceBody"} <= set(
        schema["components"]["schemas"]
    )
