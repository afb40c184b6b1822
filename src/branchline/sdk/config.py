"""`run.config`: write-once hyperparameters, dict and attribute access (reference §4)."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import os
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from branchline.errors import ConfigError, UsageError
from branchline.sdk.values import normalize

__all__ = ["Config", "config_dict_from", "config_value"]


def config_dict_from(obj: Any) -> dict[str, Any]:
    """A plain dict from a dict or an object holding hyperparameters (wandb reads any `__dict__`).

    Dicts, OmegaConf `DictConfig`, dataclasses, pydantic models, `argparse.Namespace`,
    `SimpleNamespace` and absl/TF flags are read; their values become stored values with
    `config_value`.
    """
    if obj is None:
        return {}
    if isinstance(obj, str):
        raise UsageError(
            f"config={obj!r}: pass a dict or an object with attributes; YAML files are read with "
            "branchline.helper.load_config_yaml()."
        )
    if hasattr(obj, "flag_values_dict"):  # absl / TF flags
        return dict(obj.flag_values_dict())
    container = _container(obj, any_object=True)
    if isinstance(container, Mapping):
        return dict(container)
    raise UsageError(
        f"config must be a dict or an object with attributes (dataclass, namespace, pydantic model, "
        f"OmegaConf config), not {type(obj).__name__}."
    )


def _container(value: Any, any_object: bool = False) -> Any:
    """A dict/list for objects that hold named values, or `value` itself.

    `any_object`: also read the attributes of other objects, as wandb does for `config=` itself
    (values nested inside are kept as text instead, like wandb's).
    """
    module = type(value).__module__
    if module.startswith("omegaconf"):
        from omegaconf import OmegaConf  # only loaded when such an object is passed

        return OmegaConf.to_container(value, resolve=True)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)) and hasattr(type(value), "model_fields"):  # pydantic v2
        return value.model_dump()
    if isinstance(value, (argparse.Namespace, types.SimpleNamespace)):
        return vars(value)
    if isinstance(value, Mapping):
        return value
    if any_object and not isinstance(value, type) and hasattr(value, "__dict__") and not callable(value):
        return {k: v for k, v in vars(value).items() if not k.startswith("_")}
    return value


def config_value(value: Any) -> Any:
    """A config value as stored: JSON-like, with what wandb keeps as text kept as text.

    `Enum` members become their name; `Path`, `torch.device`, `torch.dtype`, `complex` and other
    objects without a JSON form become `str(value)`; nested dataclasses and namespaces become dicts.
    """
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, complex):
        return str(value)
    if isinstance(value, slice):
        return {"slice_start": value.start, "slice_step": value.step, "slice_stop": value.stop}
    if type(value).__module__.split(".")[0] in ("numpy", "torch") and callable(getattr(value, "tolist", None)):
        converted = value.tolist()
        return str(value) if converted is value else config_value(converted)
    container = _container(value)
    if isinstance(container, Mapping):
        return {str(k): config_value(v) for k, v in container.items()}
    if isinstance(container, (list, tuple, set, frozenset)):
        return [config_value(v) for v in container]
    try:
        return normalize(container)
    except TypeError:
        return str(value)


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
        object.__setattr__(self, "_items", {_key(k): config_value(v) for k, v in (data or {}).items()})
        object.__setattr__(self, "_on_change", on_change)

    # -- writing -----------------------------------------------------------------
    def _set(self, values: Mapping[str, Any], allow_val_change: bool) -> None:
        changed: dict[str, Any] = {}
        for raw_key, raw_value in values.items():
            key = _key(raw_key)
            value = config_value(raw_value)
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
