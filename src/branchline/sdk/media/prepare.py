"""The training thread's side of media: media values in a logged row become MEDIA records.

Each media object's raw content is appended to the journal (one record, no encoding), and the
row keeps a placeholder `{"_type": "media-ref", "seq": n}` that the writer replaces with the
stored file's descriptor (sdk/media/stage.py). Histograms are small and go in the row as they
are. Lists of media under one key become lists of descriptors; matplotlib figures are logged
as images (so is `matplotlib.pyplot` itself: its current figure), and pandas DataFrames as tables.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from branchline.records import MAX_DEPTH
from branchline.vocab import RecordKind

__all__ = ["REF", "has_media", "prepare"]

#: The `_type` of a placeholder the writer fills in.
REF = "media-ref"

Write = Callable[..., int]


def _pyplot(value: Any) -> bool:
    """`matplotlib.pyplot` itself: wandb logs its current figure."""
    return type(value) is ModuleType and value.__name__ == "matplotlib.pyplot"


def _special(value: Any) -> bool:
    module = type(value).__module__
    if module.startswith("branchline.sdk.media") or _pyplot(value):
        return True
    if module.startswith("matplotlib") and hasattr(value, "savefig") and hasattr(value, "canvas"):
        return True
    return module.startswith("pandas") and type(value).__name__ == "DataFrame"


def has_media(values: dict[str, Any], depth: int = 0) -> bool:
    """Whether a logged row holds media (checked without importing numpy or PIL).

    Looks `MAX_DEPTH` levels deep: deeper rows are refused by `check_loggable` anyway.
    """
    if depth > MAX_DEPTH:
        return False
    for value in values.values():
        kind = type(value)
        if kind is float or kind is int or kind is str or kind is bool:
            continue
        if _special(value):
            return True
        if (kind is list or kind is tuple) and value and _special(value[0]):
            return True
        if kind is dict and has_media(value, depth + 1):
            return True
    return False


def prepare(write: Write, values: dict[str, Any], step: int) -> dict[str, Any]:
    """`values` with media journaled (through `write`, the journal's) and replaced by placeholders."""
    return {key: _convert(write, key, step, value, 0) for key, value in values.items()}


def _convert(write: Write, key: str, step: int, value: Any, depth: int) -> Any:
    from branchline.sdk.media.base import Media
    from branchline.sdk.media.histogram import Histogram

    if isinstance(value, Media):
        return emit(write, key, step, value)
    if isinstance(value, Histogram):
        return value.to_json()
    kind = type(value)
    if depth > MAX_DEPTH:
        return value  # too deep to store: check_loggable refuses it with a message
    if kind is list or kind is tuple:
        return [_convert(write, key, step, item, depth + 1) for item in value]
    if kind is dict:
        return {k: _convert(write, f"{key}.{k}", step, v, depth + 1) for k, v in value.items()}
    module = kind.__module__
    if _pyplot(value):
        value, module = value.gcf(), "matplotlib.figure"
    if module.startswith("matplotlib") and hasattr(value, "savefig"):
        from branchline.sdk.media.image import Image

        return emit(write, key, step, Image.from_figure(value))
    if module.startswith("pandas") and kind.__name__ == "DataFrame":
        from branchline.sdk.media.table import Table

        return emit(write, key, step, Table(dataframe=value))
    return value


def emit(write: Write, key: str, step: int, media: Any) -> dict[str, Any]:
    """Journal one media object (its children first); the placeholder for its descriptor."""
    refs = {name: emit(write, key, step, child) for name, child in media.children().items()}
    payload = media.payload()
    if refs:
        payload["children"] = refs
    seq = write(RecordKind.MEDIA, key, step, media.kind, payload)
    return {"_type": REF, "seq": seq}
