"""Turning logged values into what the journal stores (wandb's value rules, §2.3 of the reference)."""

from __future__ import annotations

import datetime
import enum
from collections.abc import Mapping
from typing import Any

__all__ = ["encode_default", "normalize", "histogram"]

HISTOGRAM_THRESHOLD = 32
HISTOGRAM_BINS = 32


def histogram(values: Any, bins: int = HISTOGRAM_BINS) -> dict[str, Any]:
    import numpy as np

    array = np.asarray(values, dtype=np.float64).ravel()
    array = array[np.isfinite(array)]
    if array.size == 0:
        return {"_type": "histogram", "values": [], "bins": []}
    counts, edges = np.histogram(array, bins=bins)
    return {"_type": "histogram", "values": counts.tolist(), "bins": edges.tolist()}


def _array_value(array: Any) -> Any:
    size = int(getattr(array, "size", 0))
    if size == 1:
        return normalize(array.reshape(-1)[0].item() if hasattr(array, "reshape") else array.item())
    if size > HISTOGRAM_THRESHOLD:
        return histogram(array)
    return [normalize(v) for v in array.tolist()]


def encode_default(value: Any) -> Any:
    """msgpack's hook for types it cannot pack itself; raises TypeError for the rest."""
    if type(value) is int:
        # Past msgpack's 64 bits: stored as the float a chart would plot (wandb's JSON history
        # holds such a number as a float too).
        try:
            return float(value)
        except OverflowError:
            raise TypeError(f"An integer of {value.bit_length()} bits is too large to log, even as a float.") from None
    module = type(value).__module__
    if module == "numpy" or module.startswith("numpy."):
        if hasattr(value, "shape") and value.shape != ():
            return _array_value(value)
        return value.item()
    if module.startswith("torch"):
        tensor = value.detach().cpu() if hasattr(value, "detach") else value
        if hasattr(tensor, "numel") and tensor.numel() == 1:
            return tensor.item()
        if hasattr(tensor, "numpy"):
            return _array_value(tensor.numpy())
    if module.startswith(("jax", "jaxlib", "tensorflow")) and hasattr(value, "__array__"):
        import numpy as np

        return _array_value(np.asarray(value))
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset, range)):
        return list(value)
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if hasattr(value, "to_json") and callable(value.to_json):
        return value.to_json()
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '')}.{value.__qualname__}"
    raise TypeError(
        f"Object of type {type(value).__name__} is not loggable; log numbers, strings, lists, dicts, "
        "numpy/torch values or branchline data types."
    )


def normalize(value: Any) -> Any:
    """A plain Python (JSON-like) version of a logged value, for summaries and config."""
    if value is None or type(value) in (bool, int, str):
        return value
    if type(value) is float:
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {str(k): normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    if isinstance(value, (bool, int, float, str)):
        # A subclass (numpy.float64, numpy.str_, an IntEnum): the builtin it derives from. Its MRO's
        # second entry is not always that builtin (numpy.float64's is numpy.floating).
        for base in (bool, int, float, str):
            if isinstance(value, base):
                return base(value)
    return normalize(encode_default(value))
