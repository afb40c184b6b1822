"""Request bodies (validated) and response shapes (documented in the OpenAPI schema) of `/api/v1`."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_serializer

from branchline.server.guards import SafeText

__all__ = [
    "Alert",
    "AlertList",
    "ArtifactList",
    "ArtifactRef",
    "ConsoleLine",
    "ConsoleLog",
    "ErrorBody",
    "ErrorDetail",
    "FileList",
    "ForkedFrom",
    "Health",
    "KeyInfo",
    "KeysRequest",
    "KeysResponse",
    "MoveRequest",
    "Ok",
    "Project",
    "ProjectColumns",
    "ProjectDetail",
    "ProjectList",
    "RunBrief",
    "RunDetail",
    "RunFile",
    "RunItem",
    "RunList",
    "RunPatch",
    "Series",
    "SeriesRequest",
    "SeriesResponse",
]

Text256 = Annotated[SafeText, StringConstraints(max_length=256)]
Tag = Annotated[SafeText, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
Key = Annotated[SafeText, StringConstraints(min_length=1, max_length=512)]
IncarnationId = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors -----------------------------------------------------------------------------------
class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `not_found`, `invalid_request`.")
    message: str = Field(description="What went wrong and what to change.")
    field: str | None = Field(None, description="The request field at fault, when there is one.")


class ErrorBody(BaseModel):
    error: ErrorDetail


class Ok(BaseModel):
    ok: bool = True


class Health(BaseModel):
    ok: bool
    version: str
    read_only: bool


# -- projects ---------------------------------------------------------------------------------
class Project(BaseModel):
    entity: str
    name: str
    created_at: float
    run_count: int
    running_count: int
    last_activity: float | None


class ProjectList(BaseModel):
    projects: list[Project]


class ProjectColumns(BaseModel):
    config: list[str] = Field(description="Flattened config keys (dot paths) seen in the project's runs.")
    summary: list[str] = Field(description="Flattened summary keys seen in the project's runs.")


class ProjectDetail(Project):
    state_counts: dict[str, int]
    columns: ProjectColumns
    public: bool = Field(False, description="Readable by anyone (also without an API key); else only by members.")


class ProjectPatch(_Strict):
    public: bool = Field(description="Make the project public (true) or private to its entity's members (false).")


# -- runs -------------------------------------------------------------------------------------
class ForkedFrom(BaseModel):
    run_id: str | None
    path: str | None
    step: int | None
    kind: str | None = Field(description="`fork` (another run) or `rewind` (an archived incarnation).")
    incarnation_id: str
    archived: bool
    deleted: bool


class RunBrief(BaseModel):
    """A run or incarnation in a list; built straight from the store's `RunView` (same field names)."""

    model_config = ConfigDict(from_attributes=True)

    entity: str
    project: str
    run_id: str
    path: str
    incarnation_id: str
    name: str
    state: str
    created_at: float
    started_at: float
    heartbeat_at: float
    finished_at: float | None
    runtime: float = Field(
        description="Runtime: wall-clock seconds from the start to the end (to now while running), "
        "pauses between a finish and a resume included."
    )
    duration: float = Field(
        description="Duration: seconds the run was actively running, pauses excluded (at most `runtime`)."
    )
    last_step: int
    archived: bool
    ordinal: int
    forked_from: ForkedFrom | None


class RunItem(RunBrief):
    notes: str
    private: bool = Field(description="Readable by the members of its entity only, even in a public project.")
    tags: list[str]
    group: str
    job_type: str
    host: str
    username: str
    updated_at: float
    exit_code: int | None
    stop_requested: bool
    starting_step: int
    config: dict[str, Any]
    summary: dict[str, Any]

    @field_serializer("config", "summary")
    def _non_finite_as_text(self, doc: dict[str, Any]) -> dict[str, Any]:
        # JSON has no NaN or infinity: send "NaN", "Infinity", "-Infinity" so the web app shows the
        # value as logged, not as a missing one (null).
        return _spell_non_finite(doc)  # type: ignore[no-any-return]


def _spell_non_finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _spell_non_finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_spell_non_finite(v) for v in value]
    return value


class RunList(BaseModel):
    runs: list[RunItem]
    total: int
    limit: int
    offset: int
    order: str


class RunDetail(RunItem):
    metadata: dict[str, Any]
    archived_incarnations: list[RunBrief]
    forks: list[RunBrief]
    current_incarnation_id: str


class RunPatch(_Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    notes: Annotated[str, StringConstraints(max_length=100_000)] | None = None
    tags: Annotated[list[Tag], Field(max_length=200)] | None = None
    group: Text256 | None = None
    job_type: Text256 | None = None
    private: bool | None = Field(
        None, description="Make the run private to its entity's members (true) or visible with its project (false)."
    )


class MoveRequest(_Strict):
    project: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    entity: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None


# -- history ----------------------------------------------------------------------------------
class KeyInfo(BaseModel):
    numeric: bool
    count: int
    last_step: int
    runs: int = Field(1, description="How many of the asked incarnations log this key.")
    media_type: str | None = Field(
        None,
        description="The `_type` of the key's media descriptors (`image-file`, `table-file`, `histogram`, "
        "`audio-file`, `video-file`, `html-file`, `images/separated`, ...; `plot/<preset>` for a `plot.*` "
        "chart); null for plain values.",
    )


class KeysResponse(BaseModel):
    stream: int
    keys: dict[str, KeyInfo]


class MediaRequest(_Strict):
    incarnations: Annotated[list[IncarnationId], Field(min_length=1, max_length=100)]
    key: Key
    stream: Literal[0, 1] = 0
    min_step: int | None = Field(None, ge=0)
    max_step: int | None = Field(None, ge=0)
    limit: int = Field(
        500, ge=1, le=5000, description="Most values per run; beyond it, evenly spaced steps (the last kept)."
    )


class MediaStep(BaseModel):
    step: int
    value: Any = Field(
        description="The descriptor as logged, each file in it given a `url` (under `/api/v1/media/files/`)."
    )


class MediaRunValues(BaseModel):
    incarnation_id: str
    count: int = Field(description="Values in the step range before `limit` thinned them.")
    steps: list[MediaStep]


class MediaResponse(BaseModel):
    key: str
    stream: int
    runs: list[MediaRunValues]


class KeysRequest(_Strict):
    incarnations: Annotated[list[IncarnationId], Field(min_length=1, max_length=500)]
    stream: Literal[0, 1] = 0


class _ChartWindow(_Strict):
    """What every chart request shares: the stream and the step range to read."""

    stream: Literal[0, 1] = Field(0, description="0: history, 1: system metrics.")
    min_step: int | None = Field(None, ge=0)
    max_step: int | None = Field(None, ge=0)


class SeriesRequest(_ChartWindow):
    incarnations: Annotated[list[IncarnationId], Field(min_length=1, max_length=500)]
    keys: Annotated[list[Key], Field(min_length=1, max_length=200)]
    x: Key = Field("_step", description="`_step`, `_runtime`, `_timestamp` or any logged numeric key.")
    buckets: int = Field(1000, ge=1, le=20_000, description="Min/max buckets; at most 2*buckets+2 points.")


class Series(BaseModel):
    incarnation_id: str
    key: str
    x: list[float | None]
    y: list[float | None]
    count: int = Field(description="Points before downsampling.")
    sampled: bool
    last_step: int


class SeriesResponse(BaseModel):
    x: str
    stream: int
    buckets: int
    series: list[Series]


class SeriesGroup(_Strict):
    name: Annotated[str, StringConstraints(max_length=512)] = Field(description="The group's label.")
    incarnations: Annotated[list[IncarnationId], Field(min_length=1, max_length=1000)]


class GroupSeriesRequest(_ChartWindow):
    groups: Annotated[list[SeriesGroup], Field(min_length=1, max_length=100)]
    keys: Annotated[list[Key], Field(min_length=1, max_length=50)]
    buckets: int = Field(1000, ge=1, le=20_000, description="At most this many points per group.")


class GroupSeries(BaseModel):
    group: str
    key: str
    x: list[float | None] = Field(description="Steps (the first of each bucket when reduced).")
    mean: list[float | None]
    min: list[float | None]
    max: list[float | None]
    runs: int = Field(description="Runs of the group that logged the key.")
    count: int = Field(description="Aligned steps before reduction (the union of the runs' steps).")
    sampled: bool


class GroupSeriesResponse(BaseModel):
    x: str
    stream: int
    buckets: int
    series: list[GroupSeries]


# -- telemetry --------------------------------------------------------------------------------
class ConsoleLine(BaseModel):
    line_no: int
    stream: str
    ts: float
    text: str


class ConsoleLog(BaseModel):
    incarnation_id: str
    lines: list[ConsoleLine]
    next_line: int = Field(description="Pass as `since` to fetch only newer lines.")


class RunFile(BaseModel):
    path: str
    size: int
    sha256: str
    updated_at: float
    available: bool = Field(description="Whether the server can send the content.")


class FileList(BaseModel):
    incarnation_id: str
    files: list[RunFile]


class Alert(BaseModel):
    title: str
    text: str
    level: str
    ts: float


class AlertList(BaseModel):
    incarnation_id: str
    alerts: list[Alert]


class ArtifactRef(BaseModel):
    id: str
    entity: str
    project: str
    name: str
    type: str
    version: str
    aliases: list[str]
    digest: str
    size: int
    file_count: int
    description: str | None
    created_at: float


class ArtifactList(BaseModel):
    incarnation_id: str
    logged: list[ArtifactRef]
    used: list[ArtifactRef]
