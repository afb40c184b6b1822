"""`branchline.Api`: read and manage runs from scripts, like `wandb.Api()`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from branchline.api.backend import Backend, open_backend
from branchline.api.paths import PathError, parse_project_path, parse_run_path
from branchline.api.projects import Project
from branchline.api.runs import Run, Runs
from branchline.errors import RunNotFoundError
from branchline.inflight import wait_until_stored
from branchline.settings import Settings

__all__ = ["Api"]

# wandb spells some overrides differently from branchline's settings.
_OVERRIDE_ALIASES = {"dir": "root_dir", "store": "store_url"}


class Api:
    """Runs and projects of a store (default: ./branchline/store.db) or, later, a server.

    `overrides` may set `store_url`, `root_dir` (alias `dir`), `entity`, `project` and `base_url`;
    anything unset comes from BRANCHLINE_* / WANDB_* variables and the settings file.
    """

    def __init__(
        self,
        overrides: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        api_key: str | None = None,
    ) -> None:
        self.settings = Settings.resolve({}, None)
        given = {_OVERRIDE_ALIASES.get(key, key): value for key, value in (overrides or {}).items()}
        if api_key is not None:
            given["api_key"] = api_key
        self.settings.update(given, source="Api(overrides=...)")
        self.timeout = timeout
        self._backend: Backend | None = None

    @property
    def backend(self) -> Backend:
        """The store (or server) this Api reads, opened on first use."""
        if self._backend is None:
            self._backend = open_backend(self.settings)
        return self._backend

    @property
    def default_entity(self) -> str:
        if self.settings.base_url and self.settings.entity is None:
            self.backend  # noqa: B018 - opening a server backend fills in the key owner's entity
        return self.settings.resolved_entity

    @property
    def default_project(self) -> str | None:
        return self.settings.project

    def run(self, path: str | Sequence[str]) -> Run:
        """One run by path: `entity/project/run_id`, `entity/project/runs/run_id`, `project/run_id`
        or `run_id`; raises RunNotFoundError naming the path when there is no such run."""
        entity, project, run_id = parse_run_path(path, entity=self.default_entity, project=self.default_project)
        view = self.backend.get_run(entity, project, run_id)
        # A run this process has just started may still be on its way into the store.
        if view is None and wait_until_stored():
            view = self.backend.get_run(entity, project, run_id)
        if view is None:
            raise RunNotFoundError(f"Run {entity}/{project}/{run_id} not found (looked up from {path!r}).")
        return Run(self.backend, view)

    def runs(
        self,
        path: str | Sequence[str] | None = None,
        filters: dict[str, Any] | None = None,
        order: str = "+created_at",
        per_page: int = 50,
        include_sweeps: bool = True,
        lazy: bool = True,
    ) -> Runs:
        """The runs of a project (`entity/project` or `project`) matching `filters`, lazily paged.

        `order` is `[+|-]created_at`, `heartbeat_at`, `config.<key>` or `summary_metrics.<key>`
        (`+` ascending, the default); filters are MongoDB-style, evaluated by the database.
        """
        entity, project = parse_project_path(path, entity=self.default_entity, project=self.default_project)
        wait_until_stored()  # the list includes runs this process has just started
        return Runs(self.backend, entity, project, filters=filters, order=order, per_page=per_page)

    def projects(self, entity: str | None = None, per_page: int = 200) -> list[Project]:
        """Every project of an entity (default: the default entity), by name."""
        rows = self.backend.list_projects(entity or self.default_entity)
        return [Project(self.backend, row) for row in rows]

    def project(self, name: str, entity: str | None = None) -> Project:
        """One project; `name` may be `entity/project`. Raises if it does not exist."""
        found_entity, found_name = parse_project_path(name, entity=entity or self.default_entity)
        for row in self.backend.list_projects(found_entity):
            if row["name"] == found_name:
                return Project(self.backend, row)
        raise PathError(f"Project {found_entity}/{found_name} not found.")

    def artifact(self, name: str, type: str | None = None) -> Any:
        """An artifact version: `"entity/project/name:alias"` or `"name:vN"` (defaults fill the rest)."""
        from branchline.artifacts import public

        return public.artifact(
            self.backend,
            name,
            type,
            entity=self.default_entity,
            project=self.default_project,
            wrap_run=self._wrap,
        )

    def artifacts(self, type_name: str | None, name: str, per_page: int = 50) -> list[Any]:
        """Every version of `"entity/project/name"`, newest first."""
        from branchline.artifacts import public

        return public.artifact_versions(
            self.backend,
            type_name,
            name,
            entity=self.default_entity,
            project=self.default_project,
            wrap_run=self._wrap,
        )

    def artifact_exists(self, name: str, type: str | None = None) -> bool:
        from branchline.artifacts import public

        return public.artifact_exists(
            self.backend, name, type, entity=self.default_entity, project=self.default_project
        )

    def _wrap(self, view: Any) -> Run:
        return Run(self.backend, view, read_only=bool(getattr(view, "archived", False)))

    def flush(self) -> None:
        """Nothing is cached between calls (every read goes to the store); kept for wandb code."""

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Api {self.settings.base_url or self.settings.resolved_store_url}>"
