"""Public `Project`: one entity/project and the runs in it."""

from __future__ import annotations

from typing import Any

from branchline.api.backend import Backend
from branchline.api.runs import Runs, iso_time

__all__ = ["Project"]


class Project:
    """A project: its name, entity, when it was created and how many runs it holds."""

    def __init__(self, backend: Backend, row: dict[str, Any]) -> None:
        self._backend = backend
        self.entity: str = row["entity"]
        self.name: str = row["name"]
        self.public: bool = bool(row.get("public", False))
        self.run_count: int = int(row.get("run_count") or 0)
        self._created_at: float | None = row.get("created_at")
        self._last_activity: float | None = row.get("last_activity")

    @property
    def id(self) -> str:
        return self.name

    @property
    def path(self) -> list[str]:
        return [self.entity, self.name]

    @property
    def created_at(self) -> str | None:
        return iso_time(self._created_at)

    @property
    def last_activity(self) -> str | None:
        """When a run of the project last changed."""
        return iso_time(self._last_activity)

    def runs(self, filters: dict[str, Any] | None = None, order: str = "+created_at", per_page: int = 50) -> Runs:
        return Runs(self._backend, self.entity, self.name, filters=filters, order=order, per_page=per_page)

    def __repr__(self) -> str:
        return f"<Project {self.entity}/{self.name}>"
