"""Strict JSON for stored documents: no NaN/Infinity tokens and no NUL characters.

PostgreSQL's JSONB and SQLite's JSON functions reject both, so non-finite floats are stored as the
strings "NaN", "Infinity" and "-Infinity", and NUL as U+FFFD.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["strict_json", "strict_value"]


def strict_value(value: Any) -> Any:
    """`value` with every non-finite float and NUL character replaced as stored."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {str(k).replace("\x00", "\ufffd"): strict_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_value(v) for v in value]
    return value


def strict_json(value: Any) -> str:
    """`value` as strict JSON text."""
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError:
        return json.dumps(strict_value(value), allow_nan=False)
    return json.dumps(strict_value(value), allow_nan=False) if "\\u0000" in text else text
