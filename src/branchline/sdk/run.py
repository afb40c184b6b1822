"""`Run`: one run's lifecycle in the training process (reference §2–§6).

Every `log()` call ends in one journal append (a kernel write) and nothing else heavy: decoding,
columnising and storing happen in the writer process.
"""

from __future__ import annotations

import functools
import os
import struct
import sys
import time
import warnings
import zlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from branchline.errors import UsageError
from branchline.records import check_loggable
from branchline.sdk.config import Config
from branchline.sdk.journal import FRAME, ROW_MARK, row_struct
from branchline.sdk.media.prepare import has_media
from branchline.sdk.media.prepare import prepare as prepare_media
from branchline.sdk.summary import Summary
from branchline.summaries import MetricDef, SummaryState, parse_summary_ops
from branchline.vocab import RecordKind, RunState

if TYPE_CHECKING:
    from branchline.runspec import RunStart
    from branchline.sdk.context import RunContext
    from branchline.settings import Settings

__all__ = ["Run", "Metric"]

_HISTORY = int(RecordKind.HISTORY)
# Bound once: the fast path of log() runs millions of times.
_now = time.time
_write = os.write
_frame = FRAME.pack
_crc = zlib.crc32
_ROW_MARK = ROW_MARK
_SCALARS = (int, float, str, bool, type(None))
_SCALAR_TYPES = frozenset(_SCALARS)


class Metric:
    """What `define_metric` returns."""

    def __init__(self, definition: MetricDef) -> None:
        self.name = definition.name
        self.step_metric = definition.step_metric
        self.step_sync = definition.step_sync
        self.hidden = definition.hidden
        self.summary = definition.summary

    def __repr__(self) -> str:
        return f"Metric(name={self.name!r}, step_metric={self.step_metric!r}, summary={self.summary!r})"


class Run:
    """A live run. Create it with `branchline.init()`."""

    def __init__(self, settings: Settings, start: RunStart, resources: RunContext) -> None:
        self._settings = settings
        self._start = start
        # The run's parts (files, alerts, telemetry, artifacts, finishing) get the context, never the Run.
        self._ctx = self._res = resources
        self._journal = resources.journal
        self._fd = resources.journal.fd
        self._packer = resources.journal.packer
        self._finished = False
        self._exit_code: int | None = None
        self._preempting = False
        self._t0 = resources.t0
        self._runtime_offset = start.runtime_offset
        self._t_base = self._t0 - start.runtime_offset  # runtime = now - _t_base
        self._step = start.starting_step
        self._pending: dict[str, Any] | None = None
        self._pending_ts = 0.0
        self._state = SummaryState.restore(start.summary, start.rules)
        self._last = self._state.summary
        # Top-level keys seen with scalar values and no define_metric rule: rows made only of
        # these take the fast path.
        self._fast_keys: set[str] = set()
        # Key sets whose rows are all floats are written as binary float rows (one struct.pack).
        self._layouts: dict[tuple[str, ...], Callable[..., bytes]] = {}
        self._no_layout: set[tuple[str, ...]] = set()
        self._row_unpack: dict[tuple[str, ...], Callable[[bytes], tuple[Any, ...]]] = {}
        self._unfolded: dict[tuple[str, ...], bytes] = {}  # latest float row per layout, not in the summary yet
        self._layout_ids = 0
        self._id = start.run_id
        self._name = start.name
        self._notes = start.notes
        self._tags = tuple(start.tags)
        self._group = start.group
        self._job_type = start.job_type
        self.config = Config(start.config, on_change=self._config_changed)
        self.summary = Summary(
            self._state, self._summary_edited, lambda: self._finished, self._fold_rows, self._summary_media
        )

    # -- identity --------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._id

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = str(value)
        self._meta(name=self._name)

    @property
    def notes(self) -> str:
        return self._notes

    @notes.setter
    def notes(self, value: str) -> None:
        self._notes = str(value)
        self._meta(notes=self._notes)

    @property
    def tags(self) -> tuple[str, ...]:
        return self._tags

    @tags.setter
    def tags(self, value: Any) -> None:
        try:
            tags = validate_tags(value)
        except UsageError as exc:
            warnings.warn(f"{exc} Tags were not changed.", stacklevel=2)
            return
        self._tags = tags
        self._meta(tags=list(tags))

    @property
    def group(self) -> str:
        return self._group

    @property
    def job_type(self) -> str:
        return self._job_type

    @property
    def project(self) -> str:
        return self._start.project

    @property
    def entity(self) -> str:
        return self._start.entity

    @property
    def path(self) -> str:
        return f"{self.entity}/{self.project}/{self.id}"

    @property
    def dir(self) -> str:
        return str(self._res.files_dir)

    @property
    def start_time(self) -> float:
        return self._t0

    @property
    def starting_step(self) -> int:
        return self._start.starting_step

    @property
    def step(self) -> int:
        """The step the next `log()` call writes to."""
        return self._step

    @property
    def resumed(self) -> bool:
        return self._start.resumed

    @property
    def forked_from(self) -> dict[str, Any] | None:
        """Where this run branched from: None, or {"run_id", "path", "step", "archived", ...}."""
        return self._start.forked_from

    @property
    def url(self) -> str | None:
        return self._res.url

    @property
    def offline(self) -> bool:
        return self._settings.mode == "offline"

    @property
    def disabled(self) -> bool:
        return self._settings.mode == "disabled"

    @property
    def settings(self) -> Settings:
        return self._settings.copy()

    @property
    def incarnation_id(self) -> str:
        """The immutable id of this incarnation of the run."""
        return self._start.incarnation_id

    def __repr__(self) -> str:
        return f"<branchline Run {self.path} ({self._name})>"

    # -- logging -----------------------------------------------------------------------------
    def log(self, data: Mapping[str, Any], step: int | None = None, commit: bool | None = None) -> None:
        """Log a dict of values to the run's history (wandb's step and commit rules)."""
        if step is None and commit is None and self._pending is None and type(data) is dict:
            keys = tuple(data)
            pack_row = self._layouts.get(keys)
            journal = self._journal
            # Telemetry threads append to the same journal: the lock keeps sequence numbers,
            # the shared packer and frames in order (acquire/release ~60 ns; `with` costs 2x).
            lock = journal.lock
            if pack_row is not None:  # a row of floats in a known layout: one struct.pack
                now = _now()
                s = self._step
                lock.acquire()
                try:
                    seq = journal.seq + 1
                    body = pack_row(seq, s, now, now - self._t_base, *data.values())
                    frame = _frame(len(body), _crc(body)) + body
                    try:  # a disk that refuses it: the journal holds the record (log() never raises)
                        written = _write(journal.wfd, frame)
                        if written != len(frame):
                            journal.hold(seq, frame, written)
                    except OSError as exc:
                        journal.hold(seq, frame, exc)
                    journal.seq = seq
                except struct.error:
                    pack_row = None  # not a number this time: the msgpack path stores it as it is
                finally:
                    lock.release()
                if pack_row is not None:
                    self._step = s + 1
                    # The summary needs only each layout's latest row: keep the packed bytes and
                    # fold them in when the summary is used (_fold_rows), not on every call.
                    self._unfolded[keys] = body
                    return
            # Scalars only: anything else takes the slow path, which refuses what cannot be stored.
            if data.keys() <= self._fast_keys and _SCALAR_TYPES.issuperset(map(type, data.values())):
                if self._unfolded:
                    self._fold_rows()
                now = _now()
                s = self._step
                lock.acquire()
                try:
                    seq = journal.seq + 1
                    body = self._packer.pack([seq, _HISTORY, s, now, now - self._t_base, data])
                    frame = _frame(len(body), _crc(body)) + body
                    try:  # a disk that refuses it: the journal holds the record (log() never raises)
                        written = _write(journal.wfd, frame)
                        if written != len(frame):
                            journal.hold(seq, frame, written)
                    except OSError as exc:
                        journal.hold(seq, frame, exc)
                    journal.seq = seq
                finally:
                    lock.release()
                self._step = s + 1
                self._last.update(data)
                if keys not in self._layouts and keys not in self._no_layout:
                    self._add_layout(keys, data)
                return
        self._log_slow(data, step, commit)

    def _fold_rows(self) -> None:
        """Apply the latest float row of each layout to the summary, in journal order."""
        rows = self._unfolded
        if not rows:
            return
        self._unfolded = {}
        decoded = []
        for keys, body in rows.items():
            fields = self._row_unpack[keys](body)  # mark, layout, seq, step, timestamp, runtime, values...
            decoded.append((fields[2], keys, fields[6:]))
        for _, keys, values in sorted(decoded):
            self._last.update(zip(keys, values, strict=True))

    def _add_layout(self, keys: tuple[str, ...], data: dict[str, Any]) -> None:
        """Give a key set whose values are all floats a binary layout, announced in the journal."""
        if any(type(value) is not float for value in data.values()) or self._layout_ids >= 65535:
            self._no_layout.add(keys)
            return
        self._layout_ids += 1
        self._journal.write(RecordKind.ROW_SCHEMA, self._layout_ids, list(keys))
        layout = row_struct(len(keys))
        self._layouts[keys] = functools.partial(layout.pack, _ROW_MARK, self._layout_ids)
        self._row_unpack[keys] = layout.unpack

    def _drop_layouts(self) -> None:
        """Rows must take the full path again (define_metric rules or explicit summary edits)."""
        self._fold_rows()
        self._layouts.clear()
        self._no_layout.clear()

    def _log_slow(self, data: Any, step: Any, commit: bool | None) -> None:
        self._ensure_active("log")
        self._fold_rows()
        if not isinstance(data, Mapping):
            raise TypeError("branchline.log must be passed a dictionary.")
        for key in data:
            if type(key) is not str:
                raise TypeError("Key values passed to `branchline.log` must be strings.")
        if step is not None:
            if isinstance(step, bool) or not hasattr(step, "__index__"):
                raise TypeError(f"'{type(step).__name__}' object cannot be interpreted as an integer")
            step = int(step.__index__())
            if step < self._step:
                self._warn_once(
                    f"step-{step}-{self._step}",
                    f"Tried to log to step {step} that is less than the current step {self._step}. "
                    "Steps must be monotonically increasing, so this data will be ignored.",
                )
                return
        values = {k: v for k, v in data.items() if k != "_step"}
        if has_media(values):  # raw content to the journal now; the writer encodes it
            target = step if step is not None and step > self._step else self._step
            values = prepare_media(self._journal.write, values, target)
        # Fail in the caller, before anything is written, for values that cannot be stored.
        check_loggable(values)
        self._packer.pack(values)
        if step is not None and step > self._step:
            if self._pending is not None:
                self._flush()
            self._step = step
        if self._pending is None:
            self._pending = {}
        self._pending.update(values)
        self._pending_ts = time.time()
        if commit if commit is not None else step is None:
            self._flush()
        if not self._state.has_rules:
            for key, value in values.items():
                if type(value) in _SCALARS and key not in self._fast_keys and key not in ("_timestamp", "_runtime"):
                    self._fast_keys.add(key)

    def _flush(self) -> None:
        row = self._pending
        if row is None or self._finished:
            return
        self._pending = None
        now = self._pending_ts or time.time()
        self._journal.write(RecordKind.HISTORY, self._step, now, now - self._t0 + self._runtime_offset, row)
        if self._state.has_rules:
            extra = self._state.step_sync_items(row)
            self._state.apply_row({**row, **extra, "_step": self._step})
        else:
            self._state.apply_row({**row, "_step": self._step})
        self._step += 1

    # -- config, summary, metadata -------------------------------------------------------------
    def _config_changed(self, changed: dict[str, Any]) -> None:
        self._ensure_active("config")
        self._journal.write(RecordKind.CONFIG, changed)

    def _summary_edited(self, sets: list[tuple[list[str], Any]], removes: list[list[str]]) -> None:
        self._journal.write(RecordKind.SUMMARY, sets, removes)
        for path, _ in sets:
            self._fast_keys.discard(path[0])
        self._drop_layouts()

    def _summary_media(self, path: tuple[str, ...], value: Any) -> Any:
        """A value set on the summary, with media journaled as `log()` journals them (the writer
        encodes them and puts the stored file's descriptor in the summary)."""
        key = ".".join(path)
        if not has_media({key: value}):
            return value
        return prepare_media(self._journal.write, {key: value}, self._step)[key]

    def _meta(self, **fields: Any) -> None:
        self._ensure_active("update")
        self._journal.write(RecordKind.META, fields)

    def define_metric(
        self,
        name: str,
        step_metric: str | Metric | None = None,
        step_sync: bool | None = None,
        hidden: bool | None = None,
        summary: str | None = None,
        overwrite: bool | None = None,
    ) -> Metric:
        """Customise a metric's x-axis and summary aggregation (`summary="min,max,mean,first,last,none"`)."""
        self._ensure_active("define_metric")
        self._fold_rows()  # rows logged before the definition count as they were
        if not isinstance(name, str) or not name:
            raise UsageError("define_metric needs a non-empty metric name.")
        if "*" in name[:-1]:
            raise UsageError(f"define_metric({name!r}): a glob may only be a trailing '*', like 'val/*'.")
        if isinstance(step_metric, Metric):
            step_metric = step_metric.name
        if step_metric is not None and not isinstance(step_metric, str):
            raise UsageError("define_metric(step_metric=...) takes a metric name.")
        definition = MetricDef(
            name=name,
            step_metric=step_metric,
            step_sync=bool(step_sync if step_sync is not None else step_metric is not None),
            hidden=bool(hidden),
            summary=parse_summary_ops(summary),
        )
        merged = self._state.define(definition, overwrite=bool(overwrite))
        self._fast_keys.clear()  # rules now apply: rows go through the full path
        self._drop_layouts()
        self._journal.write(RecordKind.METRIC, definition.to_json(), bool(overwrite))
        return Metric(merged)

    def watch(
        self,
        models: Any,
        criterion: Any = None,
        log: str | None = "gradients",
        log_freq: int = 1000,
        idx: int | None = None,
        log_graph: bool = False,
    ) -> None:
        """Log PyTorch models' gradient and/or parameter histograms every `log_freq` steps."""
        from branchline.sdk.watch import watch_models

        watch_models(self, models, criterion, log=log, log_freq=log_freq, idx=idx, log_graph=log_graph)

    def unwatch(self, models: Any = None) -> None:
        """Remove the hooks `watch` put on `models` (all of them when None)."""
        from branchline.sdk.watch import unwatch_models

        unwatch_models(self, models)

    def log_code(self, root: str = ".", name: str | None = None, include_fn: Any = None, exclude_fn: Any = None) -> Any:
        """Log the source files under `root` as a `code` artifact (None if nothing matched)."""
        from branchline.sdk.artifacts import log_code

        return log_code(self._ctx, root, name=name, include_fn=include_fn, exclude_fn=exclude_fn)

    def log_artifact(
        self,
        artifact_or_path: Any,
        name: str | None = None,
        type: str | None = None,
        aliases: Any = None,
        tags: Any = None,
    ) -> Any:
        """Log an Artifact (or a file, directory or reference path) as an output of this run."""
        from branchline.sdk.artifacts import log_artifact

        return log_artifact(self._ctx, artifact_or_path, name=name, type=type, aliases=aliases, tags=tags)

    def use_artifact(
        self, artifact_or_name: Any, type: str | None = None, aliases: Any = None, use_as: str | None = None
    ) -> Any:
        """Record that this run uses an artifact version ("name:alias", "name:vN", "e/p/name:alias")."""
        from branchline.sdk.artifacts import use_artifact

        return use_artifact(self._ctx, artifact_or_name, type=type, aliases=aliases, use_as=use_as)

    def link_artifact(self, artifact: Any, target_path: str, aliases: Any = None) -> Any:
        """Accepted for wandb scripts: logs a draft artifact; registries do not exist here (a warning)."""
        from branchline.sdk.init_compat import link_artifact

        self._ensure_active("link_artifact")
        return link_artifact(self, artifact, target_path, aliases)

    def _label(self, *args: Any, **kwargs: Any) -> None:
        """Integrations (transformers, torchtune) label runs for wandb's telemetry; nothing to record."""

    def save(self, glob_str: str, base_path: str | None = None, policy: str = "live") -> list[str]:
        """Store files with the run (`policy`: "live", "now" or "end")."""
        from branchline.sdk.files import save_files

        self._ensure_active("save")
        return save_files(self._ctx, glob_str, base_path=base_path, policy=policy)

    def alert(self, title: str, text: str, level: str = "INFO", wait_duration: float | Any = 60) -> None:
        """Record an alert on the run and deliver it to the configured channels."""
        from branchline.sdk.alerts import send_alert

        self._ensure_active("alert")
        send_alert(self._ctx, title, text, level, wait_duration, run_path=self.path, run_name=self._name)

    def write_logs(self, text: str) -> None:
        """Add a line of your own to the run's console log (docs/telemetry.md)."""
        if self._finished:
            return
        self._journal.write(RecordKind.OUTPUT, [["stdout", time.time(), str(text)]])

    def mark_preempting(self) -> None:
        self._ensure_active("mark_preempting")
        self._preempting = True
        self._journal.write(RecordKind.PREEMPTING)

    # -- lifecycle -------------------------------------------------------------------------------
    def _ensure_active(self, what: str) -> None:
        self._ctx.ensure_active(what)

    def _warn_once(self, key: str, message: str) -> None:
        self._ctx.warn_once(key, message)

    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        """Finish the run: flush, record the exit code, wait until the store has everything."""
        if self._finished:
            return
        self._fold_rows()
        from branchline.sdk import lifecycle

        # An explicit finish() means success unless told otherwise; the exit code captured from
        # sys.exit or an uncaught exception is passed in by the interpreter-exit hooks only, since
        # a SystemExit that was caught must not fail later runs.
        code = int(exit_code or 0)
        self._flush()
        if self._ctx.killed:
            state = RunState.KILLED
        elif self._preempting and code != 0:
            state = RunState.PREEMPTED
        else:
            state = RunState.FINISHED if code == 0 else RunState.FAILED
        self._exit_code = code
        lifecycle.finish_run(self, self._ctx, code, state, self._flush, lambda: self._state.summary)
        self._finished = self._ctx.finished = True
        self._pending = {}  # keeps later log() calls off the fast path, so they raise

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        if exc_type is not None:
            import traceback

            traceback.print_exception(exc_type, exc, tb, file=sys.stderr)
        self.finish(exit_code=1 if exc_type is not None else 0)
        return False


def validate_tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = (value,)
    tags = tuple(value)
    for tag in tags:
        if not isinstance(tag, str) or not 1 <= len(tag) <= 64:
            raise UsageError(f"Invalid tag {tag!r}: tags are strings of 1 to 64 characters.")
    return tags
