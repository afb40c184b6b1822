"""What `init` asks of a store (RunSpec) and what the store answers (RunStart).

Both travel as plain JSON-able dicts: in the journal header (so offline runs can be created at
sync time) and over HTTP to the server.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["RunSpec", "RunStart"]


@dataclass
class RunSpec:
    entity: str
    project: str
    run_id: str
    incarnation_id: str
    session_id: str
    name: str | None = None
    notes: str | None = None
    tags: list[str] | None = None
    group: str | None = None
    job_type: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    resume: str | None = None  # "allow" | "must" | "never" | "auto"
    fork_from: str | None = None  # run id; the step is in branch_step
    resume_from: str | None = None
    branch_step: int | None = None
    host: str = ""
    username: str = ""
    pid: int | None = None
    started_at: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSpec:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class RunStart:
    entity: str
    project: str
    run_id: str
    incarnation_id: str
    name: str
    notes: str
    tags: list[str]
    group: str
    job_type: str
    config: dict[str, Any]
    summary: dict[str, Any]
    rules: dict[str, Any]  # define_metric definitions and aggregate state
    starting_step: int
    runtime_offset: float
    resumed: bool
    forked_from: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def without_store(cls, spec: RunSpec, name: str) -> RunStart:
        """What a run knows of itself without reading a store: what `spec` asks, no summary yet."""
        origin = spec.fork_from or spec.resume_from
        return cls(
            entity=spec.entity,
            project=spec.project,
            run_id=spec.run_id,
            incarnation_id=spec.incarnation_id,
            name=name,
            notes=spec.notes or "",
            tags=list(spec.tags or []),
            group=spec.group or "",
            job_type=spec.job_type or "",
            config=dict(spec.config),
            summary={},
            rules={},
            starting_step=0 if spec.branch_step is None else spec.branch_step + 1,
            runtime_offset=0.0,
            resumed=False,
            forked_from=None
            if spec.branch_step is None
            else {
                "run_id": origin,
                "path": f"{spec.entity}/{spec.project}/{origin}",
                "step": spec.branch_step,
                "kind": "fork" if spec.fork_from else "rewind",
                "archived": spec.resume_from is not None,
            },
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunStart:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
