"""`init(sync_tensorboard=True)` and `branchline.tensorboard.patch()`: TensorBoard event files into history.

Patching learns the log directory of every event file writer that PyTorch's `SummaryWriter`
(through `tensorboard`'s `EventFileWriter`) or tensorboardX opens. A background thread tails the
`*.tfevents.*` files there with TensorBoard's own event file loader. Consecutive events of one
TensorBoard step become one history row (as wandb combines them): their values under their tags,
the step as `global_step` (wandb's key for it) and the last event's wall time as `_timestamp`. At
finish the writers are flushed and the files read to the end, so every value written before finish
is in the run.

Scalars become numbers, histograms branchline histograms ({"_type": "histogram", "values",
"bins"}), images `branchline.sdk.media.Image` values when that module exists; other plugins (text,
audio, PR curves, graphs) are skipped. With several log dirs, keys of the others are prefixed with
their path relative to the first one's parent (`train/loss`, `eval/global_step`).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from branchline.errors import UsageError
from branchline.sdk.context import ShutdownPhase

if TYPE_CHECKING:
    from branchline.sdk.context import RunContext
    from branchline.sdk.run import Run

__all__ = ["TensorBoardSync", "patch", "start_sync", "unpatch"]

#: The event file writers patched: (module, class). PyTorch's SummaryWriter uses the first.
_WRITERS = (
    ("tensorboard.summary.writer.event_file_writer", "EventFileWriter"),
    ("tensorboardX.event_file_writer", "EventFileWriter"),
)
#: Seconds between scans of the log dirs while the run is live.
POLL_SECONDS = 1.0

_lock = threading.Lock()
_originals: dict[type, Callable[..., None]] = {}
_logdirs: list[Path] = []  # in the order writers opened them
_writers: weakref.WeakSet[Any] = weakref.WeakSet()
_root_logdir: Path | None = None


def _remember(writer: Any, logdir: Any) -> None:
    path = Path(os.fspath(logdir)).resolve()
    with _lock:
        _writers.add(writer)
        if path not in _logdirs:
            _logdirs.append(path)


def _patched_init(original: Callable[..., None]) -> Callable[..., None]:
    def __init__(self: Any, logdir: Any, *args: Any, **kwargs: Any) -> None:
        original(self, logdir, *args, **kwargs)
        _remember(self, logdir)

    __init__.__wrapped__ = original  # type: ignore[attr-defined]
    return __init__


def patch(
    root_logdir: str | os.PathLike[str] | None = None,
    pytorch: bool | None = None,
    tensorboard_x: bool | None = None,
    save: bool = True,
) -> None:
    """Watch the event files TensorBoard writers create (call before `init`, or let init do it).

    `root_logdir` adds a directory searched recursively for event files, for writers this cannot
    patch (TensorFlow's own). `pytorch`/`tensorboard_x` False leaves that library alone; `save` is
    accepted for wandb compatibility (event files are not copied into the run's files).
    """
    global _root_logdir
    if root_logdir is not None:
        _root_logdir = Path(os.fspath(root_logdir)).resolve()
    wanted = {"tensorboard": pytorch is not False, "tensorboardX": tensorboard_x is not False}
    patched_any = _root_logdir is not None
    for module_name, class_name in _WRITERS:
        package = module_name.split(".")[0]
        if not wanted[package] or importlib.util.find_spec(package) is None:
            continue
        cls = getattr(importlib.import_module(module_name), class_name)
        with _lock:
            if cls not in _originals:
                _originals[cls] = cls.__init__
                cls.__init__ = _patched_init(cls.__init__)
        patched_any = True
    if not patched_any:
        raise UsageError(
            "sync_tensorboard needs the `tensorboard` package (PyTorch's SummaryWriter) or tensorboardX: "
            "pip install 'branchline[tensorboard]'."
        )


def unpatch() -> None:
    """Undo `patch()` and forget the directories seen."""
    global _root_logdir
    with _lock:
        for cls, original in _originals.items():
            setattr(cls, "__init__", original)  # noqa: B010 (mypy refuses the plain assignment)
        _originals.clear()
        _logdirs.clear()
        _root_logdir = None


def _forget() -> None:
    """A finished run's writers and dirs are not the next run's."""
    with _lock:
        _logdirs.clear()
        _writers.clear()


def _watched() -> list[tuple[Path, bool]]:
    """(directory, recursive) pairs to scan."""
    with _lock:
        dirs = [(path, False) for path in _logdirs]
    if _root_logdir is not None:
        dirs.append((_root_logdir, True))
    return dirs


def _flush_writers() -> None:
    with _lock:
        writers = list(_writers)
    for writer in writers:
        with contextlib.suppress(Exception):  # a closed writer: its file is complete already
            writer.flush()


class _EventFile:
    """One tfevents file, read incrementally with TensorBoard's loader."""

    def __init__(self, path: Path, namespace: str) -> None:
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

        self.loader = EventFileLoader(str(path))
        self.namespace = namespace
        self.plugins: dict[str, str] = {}  # tag -> plugin: only a tag's first value names it
        self.pending: dict[str, Any] | None = None
        self.pending_step = 0

    def rows(self, final: bool = False) -> Iterator[dict[str, Any]]:
        """The rows read since the last call.

        Consecutive events of one step make one row (wandb combines them the same way); the row of
        the last step read waits for an event of another step, or for `final`.
        """
        for event in self.loader.Load():
            values = self._values(event)
            if not values:
                continue
            step = int(event.step)
            if self.pending is not None and step != self.pending_step:
                yield self.pending
                self.pending = None
            if self.pending is None:
                self.pending, self.pending_step = {}, step
            self.pending.update(values)
            self.pending[self._key("global_step")] = step
            self.pending["_timestamp"] = float(event.wall_time)
        if final and self.pending is not None:
            yield self.pending
            self.pending = None

    def _key(self, name: str) -> str:
        return f"{self.namespace}/{name}" if self.namespace else name

    def _values(self, event: Any) -> dict[str, Any]:
        if not event.HasField("summary"):
            return {}
        values: dict[str, Any] = {}
        for value in event.summary.value:
            plugin = value.metadata.plugin_data.plugin_name or self.plugins.get(value.tag, "")
            if plugin:
                self.plugins[value.tag] = plugin
            converted = _convert(plugin, value)
            if converted is not None:
                values[self._key(value.tag)] = converted
        return values


def _convert(plugin: str, value: Any) -> Any:
    """A history value for one summary value, or None for what is not synced."""
    from tensorboard.util import tensor_util

    if value.WhichOneof("value") == "simple_value":
        return float(value.simple_value)
    if value.WhichOneof("value") != "tensor":
        return None
    array = tensor_util.make_ndarray(value.tensor)
    if plugin == "scalars":
        return array.item()
    if plugin == "histograms" and array.ndim == 2 and array.shape[1] == 3:
        # Rows of (left edge, right edge, count); PyTorch writes hundreds of exponential buckets,
        # most of them empty: only the span from the first to the last non-empty one is kept.
        filled = array[:, 2].nonzero()[0]
        if not len(filled):
            return {"_type": "histogram", "values": [], "bins": []}
        span = array[filled[0] : filled[-1] + 1]
        edges = [*span[:, 0].tolist(), float(span[-1, 1])]
        return {"_type": "histogram", "values": span[:, 2].tolist(), "bins": edges}
    if plugin == "images":
        return _image(array)
    return None


def _image(array: Any) -> Any:
    """The last image of an image summary (width, height, encoded PNG...), if media types exist."""
    if importlib.util.find_spec("branchline.sdk.media") is None or len(array) < 3:
        return None
    media = importlib.import_module("branchline.sdk.media")
    image_type = getattr(media, "Image", None)
    if image_type is None:
        return None
    import io

    try:
        from PIL import Image as PILImage

        return image_type(PILImage.open(io.BytesIO(bytes(array[-1]))))
    except Exception:  # an image this cannot decode is left out, not fatal to training
        return None


class TensorBoardSync:
    """The tailing thread of one run; attached to the run's context, stopped (drained) at finish."""

    def __init__(self, log: Callable[[dict[str, Any]], None], poll_seconds: float = POLL_SECONDS) -> None:
        self._log = log
        self._poll = poll_seconds
        self._files: dict[Path, _EventFile] = {}
        self._first_dir: Path | None = None
        self._stop = threading.Event()
        self._scan_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="branchline-tensorboard", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _namespace(self, directory: Path) -> str:
        if self._first_dir is None:
            self._first_dir = directory
        if directory == self._first_dir:
            return ""
        relative = os.path.relpath(directory, self._first_dir.parent)
        return directory.name if relative.startswith("..") else relative.replace(os.sep, "/")

    def scan(self, final: bool = False) -> int:
        """Read what is new in every event file; returns the number of rows logged.

        `final`: also log each file's last row (at finish, when no later step will come).
        """
        logged = 0
        with self._scan_lock:
            for directory, recursive in _watched():
                pattern = "**/*tfevents*" if recursive else "*tfevents*"
                for path in sorted(directory.glob(pattern)):
                    if path not in self._files and path.is_file():
                        self._files[path] = _EventFile(path, self._namespace(path.parent))
            for event_file in self._files.values():
                for row in event_file.rows(final):
                    self._log(row)
                    logged += 1
        return logged

    def _loop(self) -> None:
        while not self._stop.wait(self._poll):
            try:
                self.scan()
            except Exception:  # a half-written file is read again next time
                continue

    def stop(self) -> None:
        """Flush the writers, stop the thread and log everything written so far."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        _flush_writers()
        self.scan(final=True)
        _forget()


def start_sync(run: Run, context: RunContext) -> TensorBoardSync:
    """Patch the writers, tail their files into `run`, drain them when the run finishes."""
    patch()
    lock = threading.Lock()
    plain_log = run.log

    def log(data: Any, step: int | None = None, commit: bool | None = None) -> None:
        # The TensorBoard rows and the script's own log calls share the run's step counter, so
        # (as in wandb) a `step=` passed while syncing is not used as the row's step.
        with lock:
            plain_log(data, commit=commit)

    def log_row(row: dict[str, Any]) -> None:
        with lock:
            plain_log(row)

    run.log = log  # type: ignore[method-assign]
    sync = TensorBoardSync(log_row)
    context.attach(sync, ShutdownPhase.STOP_PRODUCERS)
    sync.start()
    return sync
