"""Public `Run` (one run, or one archived incarnation of it) and the lazy `Runs` paginator."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

import numpy.typing as npt

from branchline.api.backend import Backend
from branchline.api.history import (
    STEP,
    check_keys,
    frame_records,
    frame_to_pandas,
    full_series,
    load_frame,
    order_by,
    sample_frame,
    scan_rows,
    stream_number,
)
from branchline.api.run_parts import METADATA_ALIASES, File, RunSummary
from branchline.errors import RunNotFoundError, UsageError
from branchline.store.filters import validate_query
from branchline.store.reads import RunView
from branchline.vocab import RunState

__all__ = ["File", "Run", "RunFile", "Runs", "iso_time"]

_STOPPABLE = frozenset({RunState.RUNNING.value, RunState.PREEMPTING.value, RunState.PENDING.value})


def iso_time(timestamp: float | None) -> str | None:
    """UTC ISO-8601 without a zone suffix, the way wandb's API reports times."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S")


class Run:
    """A run as the public API sees it; edit fields, then `update()` to persist them.

    Archived incarnations (from `run.archived`) are the same class with `read_only` set: their
    history, config and summary read as they were, and anything that writes raises UsageError.
    """

    def __init__(self, backend: Backend, view: RunView, *, read_only: bool = False) -> None:
        self._backend = backend
        self._read_only = read_only or view.archived
        self._deleted = False
        self._set_view(view)

    def _set_view(self, view: RunView) -> None:
        self._view = view
        self.name: str = view.name
        self.notes: str = view.notes
        self.tags: list[str] = list(view.tags)
        self.group: str = view.group
        self.job_type: str = view.job_type
        #: Readable by the members of its entity only, even in a public project (set it, then `update()`).
        self.private: bool = view.private
        self.config: dict[str, Any] = copy.deepcopy(view.config)
        self.summary: RunSummary = RunSummary(view.summary, self._save_summary)

    # -- identity and fields ---------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._view.run_id

    @property
    def entity(self) -> str:
        return self._view.entity

    @property
    def project(self) -> str:
        return self._view.project

    @property
    def path(self) -> list[str]:
        """[entity, project, run_id], a list as in wandb."""
        return [self._view.entity, self._view.project, self._view.run_id]

    @property
    def url(self) -> str | None:
        return None  # an embedded store has no web address

    @property
    def storage_id(self) -> str:
        """The immutable id of this incarnation."""
        return self._view.incarnation_id

    @property
    def incarnation_id(self) -> str:
        return self._view.incarnation_id

    @property
    def incarnation(self) -> int:
        """1 for a run's first incarnation, +1 per rewind."""
        return self._view.ordinal

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def display_name(self) -> str:
        return self.name

    @display_name.setter
    def display_name(self, value: str) -> None:
        self.name = value

    @property
    def description(self) -> str:
        return self.notes

    @description.setter
    def description(self, value: str) -> None:
        self.notes = value

    @property
    def summary_metrics(self) -> dict[str, Any]:
        return self.summary

    @property
    def state(self) -> str:
        return self._view.state

    @property
    def exit_code(self) -> int | None:
        return self._view.exit_code

    @property
    def host(self) -> str:
        return self._view.host

    @property
    def username(self) -> str:
        return self._view.username

    @property
    def created_at(self) -> str:
        return iso_time(self._view.created_at) or ""

    @property
    def heartbeat_at(self) -> str:
        return iso_time(self._view.heartbeat_at) or ""

    @property
    def runtime(self) -> float:
        """Runtime: wall-clock seconds from the start to the end (to now while running), pauses included."""
        return self._view.runtime

    @property
    def duration(self) -> float:
        """Duration: seconds the run was actively running, pauses between a finish and a resume excluded."""
        return self._view.duration

    @property
    def metadata(self) -> dict[str, Any]:
        return copy.deepcopy(self._view.metadata)

    @property
    def last_step(self) -> int:
        """The last history step this run sees (inherited ones included); -1 when there is none."""
        return self._view.last_step

    @property
    def lastHistoryStep(self) -> int:
        return self._view.last_step

    @property
    def history_keys(self) -> dict[str, Any]:
        """{"keys": {key: {"typeCounts": [...]}}, "lastStep": N}, wandb's shape."""
        keys = self._backend.history_keys(self._view.incarnation_id)
        return {
            "keys": {
                key: {"typeCounts": [{"type": "number" if info["numeric"] else "other", "count": info["count"]}]}
                for key, info in sorted(keys.items())
            },
            "lastStep": self._view.last_step,
        }

    # -- lineage -----------------------------------------------------------------------------------
    @property
    def forked_from(self) -> dict[str, Any] | None:
        """Where this incarnation branched: {"run_id", "path", "step", "kind", "archived", ...} or None."""
        return None if self._view.forked_from is None else dict(self._view.forked_from)

    @property
    def archived(self) -> list[Run]:
        """The run's archived incarnations (one per rewind), oldest first, read-only."""
        if self._read_only:
            return []
        return [Run(self._backend, view, read_only=True) for view in self._backend.archived(self._view)]

    @property
    def forks(self) -> list[Run]:
        """Runs forked from any incarnation of this run, oldest first."""
        return [Run(self._backend, view) for view in self._backend.forks(self._view)]

    # -- history -------------------------------------------------------------------------------------
    def history(
        self,
        samples: int | None = 500,
        keys: list[str] | None = None,
        x_axis: str = STEP,
        pandas: bool = True,
        stream: str = "default",
    ) -> Any:
        """At most `samples` rows, keeping every key's minimum and maximum per bucket.

        With `keys`, only rows holding `x_axis` and all the keys, with just those columns. Rows are
        sorted by `x_axis`. A pandas DataFrame, or a list of dicts with `pandas=False`.
        `samples=None` (beyond wandb) returns every row.
        """
        keys_list = check_keys(keys, "history")
        stream_no = stream_number(stream)
        system = stream_no == SYSTEM_STREAM
        if system and keys_list is not None:  # stored without the `system.` prefix
            keys_list = [k.removeprefix("system.") for k in keys_list]
        if samples is not None and (not isinstance(samples, int) or samples <= 0):
            raise UsageError(f"samples must be a positive integer (or None for every row), got {samples!r}.")
        wanted = None if keys_list is None else list(dict.fromkeys([x_axis, *keys_list]))
        frame = load_frame(self._backend, self._view.incarnation_id, wanted, stream=stream_no)
        if samples is not None:
            frame = sample_frame(frame, samples, skip=frozenset({x_axis}))
        frame = order_by(frame, x_axis)
        with_step = wanted is None or STEP in wanted
        columns = None if wanted is None else [k for k in wanted if k != STEP]
        if pandas:
            table = frame_to_pandas(frame, with_step=with_step, keys=columns)
            return table.rename(columns=_system_name) if system else table
        records = frame_records(frame, with_step=with_step, keys=columns)
        if system:  # wandb's names for system metrics: system.cpu, system.gpu.0.temp, ...
            return [{_system_name(k): v for k, v in row.items()} for row in records]
        return records

    def scan_history(
        self,
        keys: list[str] | None = None,
        page_size: int = 1000,
        min_step: int = 0,
        max_step: int | None = None,
        use_cache: bool = True,
    ) -> Iterator[dict[str, Any]]:
        """Every row with min_step <= _step < max_step (max_step exclusive, clamped to last step + 1).

        With `keys`, only rows that hold all of them, each with just those keys.
        """
        keys_list = check_keys(keys, "scan_history")
        if not isinstance(page_size, int) or page_size <= 0:
            raise UsageError(f"page_size must be a positive integer, got {page_size!r}.")
        return scan_rows(
            self._backend,
            self._view.incarnation_id,
            keys=keys_list,
            page_size=page_size,
            min_step=int(min_step),
            max_step=max_step,
        )

    def metric(
        self, key: str, x_axis: str = STEP, stream: str = "default"
    ) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        """(x, values) numpy arrays of one numeric key at full resolution: no row dicts are built."""
        return full_series(self._backend, self._view.incarnation_id, key, x_axis=x_axis, stream=stream_number(stream))

    def logs(self) -> list[dict[str, Any]]:
        """Captured console lines: {"line_no", "stream", "ts", "text"}."""
        return self._backend.console_lines(self._view.incarnation_id)

    def files(self, names: list[str] | None = None, per_page: int = 50) -> list[File]:
        """Files saved with the run (all, or those in `names`), as `File` objects."""
        if names is not None:
            return [self.file(name) for name in names]
        inc = self._view.incarnation_id
        return [File(self._backend, inc, row) for row in self._backend.files(inc)]

    def file(self, name: str) -> File:
        """One file saved with the run, by its path inside the run (e.g. "model.pt" or "code/train.py").

        wandb's `wandb-metadata.json` names the run's metadata file.
        """
        stored = METADATA_ALIASES.get(name, name)
        for row in self._backend.files(self._view.incarnation_id):
            if row["path"] == stored:
                return File(self._backend, self._view.incarnation_id, row, name=name)
        raise UsageError(f"Run {'/'.join(self.path)} has no file {name!r}; run.files() lists them.")

    def upload_file(self, path: str, root: str = ".") -> File:
        """Store a local file with the run after the fact; its name is `path` relative to `root`."""
        self._check_writable("upload a file to")
        local = Path(path)
        name = os.path.relpath(local.resolve(), Path(root).resolve()).replace(os.sep, "/")
        if name.startswith("../"):
            name = local.name
        self._backend.write_file(self._view.incarnation_id, name, local.read_bytes())
        return self.file(name)

    def media(self, descriptor: dict[str, Any]) -> bytes:
        """The content of a logged media file, from its history descriptor (a fork reads its source's)."""
        from branchline.api.media import media_bytes

        return media_bytes(self._backend, self._view, descriptor)

    def download_media(self, descriptor: dict[str, Any], root: str = ".", replace: bool = True) -> Path:
        """Write a logged media file under `root` (keeping its `media/...` path); returns where."""
        from branchline.api.media import save_media

        return save_media(self._backend, self._view, descriptor, root, replace=replace)

    def table(self, descriptor: dict[str, Any]) -> Any:
        """A logged `Table` (its `table-file` descriptor) as a pandas DataFrame."""
        from branchline.api.media import table_frame

        return table_frame(self._backend, self._view, descriptor)

    # -- changes ---------------------------------------------------------------------------------------
    def logged_artifacts(self, per_page: int = 100) -> list[Any]:
        """Artifact versions this run (incarnation) logged."""
        from branchline.artifacts import public

        return public.logged_artifacts(self._backend, self.incarnation_id, wrap_run=self._wrap)

    def used_artifacts(self, per_page: int = 100) -> list[Any]:
        """Artifact versions this run (incarnation) used, in the order it used them."""
        from branchline.artifacts import public

        return public.used_artifacts(self._backend, self.incarnation_id, wrap_run=self._wrap)

    def _wrap(self, view: RunView) -> Run:
        return Run(self._backend, view, read_only=view.archived)

    def _check_writable(self, action: str) -> None:
        if self._deleted:
            raise UsageError(f"Cannot {action} run {'/'.join(self.path)}: it was deleted.")
        if self._read_only:
            raise UsageError(
                f"Cannot {action} {'/'.join(self.path)} incarnation {self.incarnation}: "
                "archived incarnations are read-only."
            )

    def load(self, force: bool = True) -> Run:
        """Re-read the run from the store, dropping unsaved edits."""
        if self._read_only:
            view = self._backend.get_incarnation(self._view.incarnation_id)
        else:
            view = self._backend.get_run(*self.path)
        if view is None:
            raise RunNotFoundError(f"Run {'/'.join(self.path)} not found; it may have been deleted or moved.")
        self._set_view(view)
        return self

    def update(self) -> None:
        """Persist edits of name, notes, tags, group, job_type, private, config and summary."""
        self._check_writable("update")
        view = self._view
        changes: dict[str, Any] = {}
        for field, old in (
            ("name", view.name),
            ("notes", view.notes),
            ("tags", view.tags),
            ("group", view.group),
            ("job_type", view.job_type),
            ("private", view.private),
            ("config", view.config),
            ("summary", view.summary),
        ):
            new = getattr(self, field)
            if field == "tags":
                new = [str(tag) for tag in new]
            elif field == "summary":
                new = dict(new)
            if new != old:  # send only what changed, so a live run's own writes are not clobbered
                changes[field] = copy.deepcopy(new)
        if changes:
            self._backend.update_run(view, **changes)
        self.load()

    save = update

    def _save_summary(self) -> None:
        """Store `summary` alone (what `run.summary.update()` and `del run.summary[k]` do)."""
        self._check_writable("update the summary of")
        if dict(self.summary) != self._view.summary:
            self._backend.update_run(self._view, summary=copy.deepcopy(dict(self.summary)))
        # Only the summary is re-read: other unsaved edits (name, tags...) stay for `update()`.
        view = self._backend.get_run(*self.path)
        if view is not None:
            self._view = view
            self.summary = RunSummary(view.summary, self._save_summary)

    def delete(self, delete_artifacts: bool = False) -> None:
        """Delete the run and its data; runs forked from it keep the history they inherited."""
        self._check_writable("delete")
        self._backend.delete_run(self._view)
        self._deleted = True

    def move(self, project: str, entity: str | None = None) -> None:
        """Move the run (history, files, lineage links) to another project."""
        self._check_writable("move")
        target_entity = entity or self.entity
        self._backend.move_run(self._view, project, target_entity)
        view = self._backend.get_run(target_entity, project, self.id)
        if view is None:
            raise RunNotFoundError(f"Run {target_entity}/{project}/{self.id} not found after moving it.")
        self._set_view(view)

    def stop(self) -> None:
        """Ask a running run to stop: its process gets a KeyboardInterrupt and the run ends `killed`."""
        self._check_writable("stop")
        self.load()
        if self.state not in _STOPPABLE:
            raise UsageError(f"Run {'/'.join(self.path)} is {self.state}; only a running run can be stopped.")
        self._backend.request_stop(self._view)

    def __repr__(self) -> str:
        suffix = f", archived incarnation {self.incarnation}" if self._read_only else ""
        return f"<Run {'/'.join(self.path)} ({self.state}{suffix})>"


SYSTEM_STREAM = 1


def _system_name(key: str) -> str:
    return key if key.startswith("_") else f"system.{key}"


#: The old name of `File`.
RunFile = File


class Runs:
    """Runs of one project matching a filter, fetched `per_page` at a time as you iterate."""

    def __init__(
        self,
        backend: Backend,
        entity: str,
        project: str,
        *,
        filters: dict[str, Any] | None = None,
        order: str = "+created_at",
        per_page: int = 50,
    ) -> None:
        if not isinstance(per_page, int) or per_page <= 0:
            raise UsageError(f"per_page must be a positive integer, got {per_page!r}.")
        validate_query(filters, order)  # a bad filter fails here, naming the field or operator
        self._backend = backend
        self.entity = entity
        self.project = project
        self.filters = filters
        self.order = order
        self.per_page = per_page
        self._loaded: list[Run] = []
        self._exhausted = False
        self._count: int | None = None

    def __len__(self) -> int:
        if self._count is None:
            self._count = self._backend.count_runs(self.entity, self.project, filters=self.filters)
        return self._count

    @property
    def length(self) -> int:
        return len(self)

    @property
    def more(self) -> bool:
        """Whether another page may still be fetched."""
        return not self._exhausted

    def _next_page(self) -> None:
        views = self._backend.list_runs(
            self.entity,
            self.project,
            filters=self.filters,
            order=self.order,
            limit=self.per_page,
            offset=len(self._loaded),
        )
        self._loaded.extend(Run(self._backend, view) for view in views)
        if len(views) < self.per_page:
            self._exhausted = True

    def __iter__(self) -> Iterator[Run]:
        index = 0
        while True:
            if index < len(self._loaded):
                yield self._loaded[index]
                index += 1
            elif self._exhausted:
                return
            else:
                self._next_page()

    @overload
    def __getitem__(self, index: int) -> Run: ...

    @overload
    def __getitem__(self, index: slice) -> list[Run]: ...

    def __getitem__(self, index: int | slice) -> Run | list[Run]:
        if isinstance(index, slice):
            return list(self)[index]
        if index < 0:
            index += len(self)
        while index >= len(self._loaded) and not self._exhausted:
            self._next_page()
        if not 0 <= index < len(self._loaded):
            raise IndexError("run index out of range")
        return self._loaded[index]

    def histories(
        self,
        samples: int | list[str] = 500,
        keys: list[str] | int | None = None,
        x_axis: str = STEP,
        format: str = "default",
        stream: str = "default",
    ) -> Any:
        """Sampled history of every run, each row tagged with its `run_id`.

        `format="default"` gives a list of dicts, `"pandas"` one DataFrame. Accepts wandb's order
        (samples, keys) and also (keys, samples).
        """
        if isinstance(samples, list | tuple):
            given_keys: list[str] = list(samples)
            samples = keys if isinstance(keys, int) else 500
            keys = given_keys
        if not isinstance(samples, int) or isinstance(keys, int):
            raise UsageError("histories(samples=int, keys=list of str | None).")
        if format not in ("default", "pandas"):
            raise UsageError(f"format must be 'default' or 'pandas', got {format!r}.")
        if format == "pandas":
            import pandas as pd

            frames = []
            for run in self:
                frame = run.history(samples=samples, keys=keys, x_axis=x_axis, pandas=True, stream=stream)
                frame.insert(0, "run_id", run.id)
                frames.append(frame)
            return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        rows: list[dict[str, Any]] = []
        for run in self:
            for row in run.history(samples=samples, keys=keys, x_axis=x_axis, pandas=False, stream=stream):
                rows.append({"run_id": run.id, **row})
        return rows

    def __repr__(self) -> str:
        return f"<Runs {self.entity}/{self.project} filters={self.filters!r} order={self.order!r}>"
