"""`run.summary`: the latest value of every metric, plus explicit edits (reference §3)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from branchline.errors import UsageError
from branchline.sdk.values import normalize
from branchline.summaries import SummaryState

__all__ = ["Summary"]


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    return normalize(value)


class SummaryNode:
    """A nested summary dict; writes go through the root as explicit edits."""

    def __init__(self, root: Summary, path: tuple[str, ...]) -> None:
        object.__setattr__(self, "_root", root)
        object.__setattr__(self, "_path", path)

    def _data(self) -> dict[str, Any]:
        node: Any = self._root._visible()
        for part in self._path:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return node if isinstance(node, dict) else {}

    def __getitem__(self, key: str) -> Any:
        value = self._data()[key]
        if isinstance(value, dict) and not value.get("_type"):
            return SummaryNode(self._root, (*self._path, key))
        return value

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setitem__(self, key: str, value: Any) -> None:
        self._root._edit((*self._path, key), value)

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __delitem__(self, key: str) -> None:
        self._root._remove((*self._path, key))

    def __delattr__(self, key: str) -> None:
        del self[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def keys(self) -> list[str]:
        return [k for k in self._data() if not k.startswith("_wandb")]

    def items(self) -> list[tuple[str, Any]]:
        return [(k, self[k]) for k in self.keys()]

    def values(self) -> list[Any]:
        return [self[k] for k in self.keys()]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def update(self, values: dict[str, Any] | None = None, **more: Any) -> None:
        for key, value in {**(values or {}), **more}.items():
            self[key] = value

    def as_dict(self) -> dict[str, Any]:
        return dict(self._data())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SummaryNode):
            return self.as_dict() == other.as_dict()
        return isinstance(other, dict) and self.as_dict() == other

    def __repr__(self) -> str:
        return repr(self.as_dict())


class Summary(SummaryNode):
    def __init__(
        self,
        state: SummaryState,
        on_edit: Callable[[list[tuple[list[str], Any]], list[list[str]]], None],
        is_finished: Callable[[], bool],
        before_use: Callable[[], None] = lambda: None,
        prepare: Callable[[tuple[str, ...], Any], Any] | None = None,
    ) -> None:
        super().__init__(self, ())
        object.__setattr__(self, "_state", state)
        object.__setattr__(self, "_on_edit", on_edit)
        object.__setattr__(self, "_is_finished", is_finished)
        # Lets the run fold rows it has not applied to the summary yet (see Run._fold_rows).
        object.__setattr__(self, "_before_use", before_use)
        # Journals media (an Image, a Table, a figure) and gives the placeholder the writer fills in.
        object.__setattr__(self, "_prepare", prepare)

    def _visible(self) -> dict[str, Any]:
        if self._is_finished():
            import warnings

            warnings.warn(
                "Summary data is not available in a finished run; read it through branchline.Api().",
                stacklevel=3,
            )
            return {}
        self._before_use()
        return _clean(self._state.summary)  # type: ignore[no-any-return]

    def _edit(self, path: tuple[str, ...], value: Any) -> None:
        if self._is_finished():
            raise UsageError("The run is finished; its summary can no longer be changed here.")
        if self._prepare is not None:
            value = self._prepare(path, value)
        value = normalize(value)
        self._before_use()
        self._state.set_explicit(path, value)
        self._on_edit([(list(path), value)], [])

    def _remove(self, path: tuple[str, ...]) -> None:
        if self._is_finished():
            raise UsageError("The run is finished; its summary can no longer be changed here.")
        self._before_use()
        self._state.remove(path)
        self._on_edit([], [list(path)])
