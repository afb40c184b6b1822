"""The request and response bodies of the SDK's side of `/api/v1` (server/ingest.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from branchline.records import INT32, RecordError, clean_json, clean_text

__all__ = [
    "MAX_BATCH_RECORDS",
    "Applied",
    "IncarnationPath",
    "Ok",
    "RecordBatch",
    "RunSpecBody",
    "SessionPath",
    "StopFlag",
]

#: Most records in one batch; the SDK sends far fewer (see sdk/http_sink.py).
MAX_BATCH_RECORDS = 50_000
_PID_MAX = 4_194_304  # Linux's ceiling for pid_max

Name = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^/\\#?%:\x00]+$")]
RunId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[^\s:;,#?/'\x00]([^:;,#?/'\x00]*[^\s:;,#?/'\x00])?$"),
]
InternalId = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
Short = Annotated[str, StringConstraints(max_length=256)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=256)]

SessionPath = Annotated[
    str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$", description="Writer session id.")
]
IncarnationPath = Annotated[
    str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$", description="Incarnation id.")
]


class RunSpecBody(BaseModel):
    """What `init` asks for: a new run, a resume, a fork (`fork_from`) or a rewind (`resume_from`)."""

    model_config = ConfigDict(extra="ignore")

    entity: Name
    project: Name
    run_id: RunId
    incarnation_id: InternalId
    session_id: InternalId
    name: Short | None = None
    notes: Annotated[str, StringConstraints(max_length=1_000_000)] | None = None
    tags: Annotated[list[Tag], Field(max_length=1000)] | None = None
    group: Short | None = None
    job_type: Short | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    resume: Literal["allow", "must", "never", "auto"] | None = None
    fork_from: RunId | None = None
    resume_from: RunId | None = None
    branch_step: Annotated[int, Field(ge=0, le=INT32 - 1)] | None = None
    host: Short = ""
    username: Short = ""
    pid: Annotated[int, Field(ge=0, le=_PID_MAX)] | None = None
    started_at: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("config", "metadata")
    @classmethod
    def _plain_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            return clean_json(value)
        except RecordError as bad:
            raise ValueError(bad.message) from None

    @field_validator("name", "notes", "group", "job_type", "host", "username")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return None if value is None else clean_text(value)


class RecordBatch(BaseModel):
    """A batch of journal records, each `[sequence, kind, *fields]`, sequences strictly increasing."""

    records: Annotated[list[list[Any]], Field(max_length=MAX_BATCH_RECORDS)]


class RejectedRecord(BaseModel):
    sequence: int
    kind: str
    step: int | None = None
    key: str | None = None
    reason: str


class Applied(BaseModel):
    applied_seq: int = Field(description="The highest sequence number stored for this session.")
    rejected: list[RejectedRecord] = Field(
        default_factory=list,
        description="Records of the batch the store could not hold: set aside (the rest is stored), never retried.",
    )


class StopFlag(BaseModel):
    stop: bool = Field(description="Whether the run was asked to stop (the SDK interrupts training).")


class Ok(BaseModel):
    ok: bool = True
