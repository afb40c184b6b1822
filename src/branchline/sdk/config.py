"""`run.config`: write-once hyperparameters, dict and attribute access (reference §4)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from branchline.errors import ConfigError, UsageError
from branchline.sdk.values import normalize

__all__ = ["Config", "config_dict_from"]


def config_dict_from(obj: Any) -> dict[str, Any]:
    """A plain dict from a dict, argparse.Namespace or absl/TF flags object."""
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    if hasattr(obj, "flag_values_dict"):  # absl / TF flags
        return dict(obj.flag_values_dict())
    if hasattr(obj, "__dict__") and type(obj).__name__ == "Namespace":
        return dict(vars(obj))
    if isinstance(obj, str):
        raise UsageError(
            f"config={obj!r}: pass a dict, an argparse.Namespace or absl flags; YAML files are read with "
            "branchline.helper.load_config_yaml()."
        )
    raise UsageError(f"config must be a dict, argparse.Namespace or absl flags, not {type(obj).__name__}.")


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"Config keys must be strings, got {type(key).__name__}.")
    return key.strip("-")


class Config:
    """Dict-like config; changing a key's value needs `update(..., allow_val_change=True)`."""

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        on_change: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        object.__setattr__(self, "_items", {_key(k): normalize(v) for k, v in (data or {}).items()})
        object.__setattr__(self, "_on_change", on_change)

    # -- writing -----------------------------------------------------------------
    def _set(self, values: Mapping[str, Any], allow_val_change: bool) -> None:
        changed: dict[str, Any] = {}
        for raw_key, raw_value in values.items():
            key = _key(raw_key)
            value = normalize(raw_value)
            if key in self._items and self._items[key] != value and not allow_val_change:
                raise ConfigError(
                    f"Attempted to change value of key {key!r} from {self._items[key]!r} to {value!r}. "
                    "Pass allow_val_change=True to config.update() to change it."
                )
            if self._items.get(key, _MISSING) != value:
                changed[key] = value
        self._items.update(changed)
        if changed and self._on_change is not None:
            self._on_change(changed)

    def update(self, d: Any, allow_val_change: bool = False) -> None:
        self._set(config_dict_from(d), allow_val_change)

    def setdefaults(self, d: Any) -> None:
        self._set(
            {k: v for k, v in config_dict_from(d).items() if _key(k) not in self._items},
            False,
        )

    def __setitem__(self, key: str, value: Any) -> None:
        self._set({key: value}, False)

    def __setattr__(self, key: str, value: Any) -> None:
        self._set({key: value}, False)

    # -- reading -----------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self._items[_key(key)]

    def __getattr__(self, key: str) -> Any:
        try:
            return self._items[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r}") from None

    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(_key(key), default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and _key(key) in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[str]:
        return list(self._items)

    def items(self) -> list[tuple[str, Any]]:
        return list(self._items.items())

    def values(self) -> list[Any]:
        return list(self._items.values())

    def as_dict(self) -> dict[str, Any]:
        return dict(self._items)

    def __repr__(self) -> str:
        return f"Config({self._items!r})"


_MISSING = object()
