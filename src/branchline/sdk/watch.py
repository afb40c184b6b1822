"""`watch(model, log="gradients" | "parameters" | "all", log_freq=1000)`: PyTorch histograms from hooks.

Every `log_freq` forward passes the parameters, and every `log_freq` backward passes each
parameter's gradient, are logged as 64-bin histograms under `parameters/<name>` and
`gradients/<name>` with `commit=False`, so they join the next committed row (wandb's rule). A
second and later watched model gets a `graph_<idx>/` prefix. Between those steps a hook costs a
counter increment. A hook never raises into training: a failure is reported once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["unwatch", "watch", "watch_models"]

LOG_CHOICES = ("gradients", "parameters", "all", None)
_BINS = 64


class _Watched:
    """The hooks on one model, and what they have counted."""

    def __init__(self, run: Any, model: Any, prefix: str, log: str | None, log_freq: int) -> None:
        self.run = run
        self.model = model
        self.prefix = prefix
        self.log_freq = log_freq
        self.thread = threading.get_ident()  # the training thread: hooks log from it directly
        self.forwards = 0
        self.backwards: dict[str, int] = {}
        self.pending: dict[str, Any] = {}  # gradient histograms from another thread, logged later
        self.handles: list[Any] = []
        self._flusher: Any = None  # a forward pre-hook, added only once a gradient is held back
        if log in ("parameters", "all"):
            self.handles.append(model.register_forward_hook(self._after_forward))
        if log in ("gradients", "all"):
            for name, param in model.named_parameters():
                if param.requires_grad:
                    self.handles.append(param.register_hook(self._gradient_hook(name)))

    def _emit(self, values: dict[str, Any]) -> None:
        if self.run._finished:
            self.remove()
            return
        self.run.log(values, commit=False)

    def _guarded(self, what: str, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception as exc:  # never into the training loop
            self.run._warn_once(f"watch-{what}", f"watch(): could not log {what} histograms: {exc}")

    def _before_forward(self, module: Any, inputs: Any) -> None:
        if self.pending and threading.get_ident() == self.thread:
            pending, self.pending = self.pending, {}
            self._guarded("gradient", lambda: self._emit(pending))

    def _after_forward(self, module: Any, inputs: Any, output: Any) -> None:
        self.forwards += 1
        if self.forwards % self.log_freq == 0:
            self._guarded("parameter", self._log_parameters)

    def _log_parameters(self) -> None:
        from branchline.sdk.media.histogram import Histogram

        values = {
            f"{self.prefix}parameters/{name}": Histogram(param.detach(), num_bins=_BINS).to_json()
            for name, param in self.model.named_parameters()
        }
        self._emit(values)

    def _gradient_hook(self, name: str) -> Callable[[Any], None]:
        def hook(grad: Any) -> None:
            count = self.backwards.get(name, 0) + 1
            self.backwards[name] = count
            if count % self.log_freq == 0:
                self._guarded("gradient", lambda: self._log_gradient(name, grad))

        return hook

    def _log_gradient(self, name: str, grad: Any) -> None:
        from branchline.sdk.media.histogram import Histogram

        key = f"{self.prefix}gradients/{name}"
        value = Histogram(grad.detach(), num_bins=_BINS).to_json()
        if threading.get_ident() == self.thread:
            self._emit({key: value})
        else:  # an autograd worker thread: the next forward pass logs it from the training thread
            self.pending[key] = value
            if self._flusher is None:
                self._flusher = self.model.register_forward_pre_hook(self._before_forward)
                self.handles.append(self._flusher)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


#: The watched models of each run (by the run's id()).
_WATCHED: dict[int, list[_Watched]] = {}


def watch_models(
    run: Any,
    models: Any,
    criterion: Any = None,
    log: str | None = "gradients",
    log_freq: int = 1000,
    idx: int | None = None,
    log_graph: bool = False,
) -> None:
    """Hook `models` (a torch module or a list of them) so `run` logs their histograms."""
    run._ensure_active("watch")
    if log not in LOG_CHOICES:
        raise ValueError(f"watch(log={log!r}): expected 'gradients', 'parameters', 'all' or None.")
    if isinstance(log_freq, bool) or not isinstance(log_freq, int) or log_freq < 1:
        raise ValueError(f"watch(log_freq={log_freq!r}): expected a positive integer.")
    items = list(models) if isinstance(models, list | tuple) else [models]
    try:
        import torch
    except ImportError:
        raise TypeError("watch() needs PyTorch: it watches torch.nn.Module models.") from None
    for model in items:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"watch() takes torch.nn.Module models, got {type(model).__name__}.")
    watched = _WATCHED.setdefault(id(run), [])
    for offset, model in enumerate(items):
        number = (idx if idx is not None else len(watched)) + offset
        prefix = f"graph_{number}/" if number > 0 else ""
        if log is not None:
            watched.append(_Watched(run, model, prefix, log, log_freq))


def unwatch_models(run: Any, models: Any = None) -> None:
    """Remove the hooks of `models` (all watched models when None)."""
    items = None if models is None else (list(models) if isinstance(models, list | tuple) else [models])
    kept = []
    for watched in _WATCHED.pop(id(run), []):
        if items is None or any(watched.model is m for m in items):
            watched.remove()
        else:
            kept.append(watched)
    if kept:
        _WATCHED[id(run)] = kept


def _current() -> Any:
    from branchline.errors import Error
    from branchline.sdk.globals import current

    run = current()
    if run is None:
        raise Error("You must call branchline.init() before branchline.watch().")
    return run


def watch(
    models: Any,
    criterion: Any = None,
    log: str | None = "gradients",
    log_freq: int = 1000,
    idx: int | None = None,
    log_graph: bool = False,
) -> None:
    """Watch PyTorch models in the current run; see `watch_models`."""
    watch_models(_current(), models, criterion, log=log, log_freq=log_freq, idx=idx, log_graph=log_graph)


def unwatch(models: Any = None) -> None:
    """Stop watching models in the current run."""
    unwatch_models(_current(), models)
