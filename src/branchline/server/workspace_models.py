"""The saved workspace layout of `/api/v1/projects/{entity}/{project}/workspace`: its shape and limits.

A layout is sections of panels. A panel charts one or more history keys (`line`) or shows one media
key (`media`); its width and height are in grid units, and its own settings (x-axis, smoothing, log
scale, how many runs it shows) override the workspace's when set. `seen_keys` lists the keys the
layout already accounted for when it was saved, so a key logged later gets a panel of its own while
a panel the user removed does not come back.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from branchline.server.guards import SafeText

__all__ = [
    "LAYOUT_MAX_BYTES",
    "MAX_PANELS",
    "PanelLayout",
    "SectionLayout",
    "Workspace",
    "WorkspaceBody",
    "WorkspaceLayout",
    "WorkspaceView",
    "WORKSPACE_BODY_LIMIT",
]

#: Largest saved layout, as compact JSON: hundreds of panels fit in a fraction of it.
LAYOUT_MAX_BYTES = 256 * 1024
#: Largest request body of a save (checked before it is parsed); the layout in it is held to the above.
WORKSPACE_BODY_LIMIT = 1024 * 1024
#: Most panels in one layout, over all its sections.
MAX_PANELS = 500

Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Key = Annotated[SafeText, StringConstraints(min_length=1, max_length=512)]
WorkspaceView = Literal["project", "run"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PanelLayout(_Strict):
    id: Id = Field(description="Unique within the layout; the web app makes one up.")
    kind: Literal["line", "media"] = Field("line", description="A line chart of `keys`, or the media panel of one key.")
    keys: list[Key] = Field(min_length=1, max_length=20, description="The history keys it shows (one for media).")
    title: Annotated[SafeText, StringConstraints(max_length=200)] | None = Field(
        None, description="Shown instead of the keys' names."
    )
    w: int = Field(1, ge=1, le=4, description="Width in grid columns (the grid has up to 4).")
    h: int = Field(1, ge=1, le=4, description="Height in rows of about 250 px.")
    x: Key | None = Field(
        None, description="X-axis: `_step`, `_runtime` (relative time), `_timestamp` (wall time) or a metric key."
    )
    smoothing: float | None = Field(None, ge=0, le=0.99, description="EMA smoothing weight (0: none).")
    log_y: bool | None = Field(None, description="Log scale on the y-axis.")
    max_runs: int | None = Field(None, ge=1, le=500, description="Show at most this many of the visualized runs.")

    @model_validator(mode="after")
    def _one_media_key(self) -> PanelLayout:
        if self.kind == "media" and len(self.keys) != 1:
            raise ValueError("a media panel shows exactly one key")
        return self


class SectionLayout(_Strict):
    id: Id
    name: Annotated[SafeText, StringConstraints(min_length=1, max_length=128)]
    panels: list[PanelLayout] = Field(default_factory=list, max_length=MAX_PANELS)


class WorkspaceLayout(_Strict):
    format: Literal[1] = Field(1, description="The layout format's version.")
    sections: list[SectionLayout] = Field(max_length=100)
    seen_keys: list[Key] = Field(default_factory=list, max_length=5000)

    @model_validator(mode="after")
    def _unique_ids(self) -> WorkspaceLayout:
        panels = [panel.id for section in self.sections for panel in section.panels]
        if len(panels) > MAX_PANELS:
            raise ValueError(f"a layout holds at most {MAX_PANELS} panels; this one has {len(panels)}")
        for kind, ids in (("panel", panels), ("section", [s.id for s in self.sections])):
            seen: set[str] = set()
            for one in ids:
                if one in seen:
                    raise ValueError(f"two {kind}s have the id {one!r}; each needs its own")
                seen.add(one)
        return self


class WorkspaceBody(_Strict):
    layout: WorkspaceLayout
    base_version: int | None = Field(
        None,
        ge=0,
        description="The version this layout was edited from (0: the automatic layout). When another save came "
        "in between, the answer is 409 instead of overwriting it; omit to save regardless.",
    )


class Workspace(BaseModel):
    entity: str
    project: str
    view: WorkspaceView
    layout: WorkspaceLayout | None = Field(description="The saved layout; null: the automatic one.")
    version: int = Field(description="Grows by one on each save; 0 when none is saved.")
    updated_at: float | None
    updated_by: str | None
