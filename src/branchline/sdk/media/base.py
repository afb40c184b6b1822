"""What every logged media object shares: a kind, raw content for the writer, and nested media.

A media object is built on the training thread and only *checked* there (shape, dtype, size);
its raw content (pixels, samples, a file's bytes) travels to the writer process in a MEDIA
journal record, and the writer encodes it into a run file (sdk/media/encode.py). So `log()`
never encodes PNG, WAV or GIF on the training thread.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from branchline.records import MAX_MEDIA_BYTES

__all__ = ["MAX_MEDIA_BYTES", "Media", "array_of", "read_file", "short"]


class Media:
    """A value `log()` stores as a run file plus a history descriptor (wandb's `*-file` values)."""

    #: The MEDIA record kind (records.MEDIA_KINDS).
    kind: ClassVar[str] = ""

    def payload(self) -> dict[str, Any]:
        """The raw content the writer encodes: bytes and JSON-like fields."""
        raise NotImplementedError

    def children(self) -> dict[str, Media]:
        """Media this one refers to (a table's image cells, an image's masks), stored first."""
        return {}


def short(value: Any) -> str:
    """A value named in an error message, kept short and on one line."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 80 else text[:77] + "..."


def array_of(value: Any, what: str) -> Any:
    """`value` (numpy array, torch tensor, JAX/TF array, nested list) as a numpy array."""
    import numpy as np

    module = type(value).__module__
    if module.startswith("torch"):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what}: {short(value)} cannot be read as an array ({exc}).") from None


def read_file(path: str | os.PathLike[str], what: str) -> bytes:
    """A media file's content, refusing a missing or oversized file with a message that says so."""
    source = Path(path)
    if not source.is_file():
        raise ValueError(f"{what}: {str(path)!r} is not a file.")
    size = source.stat().st_size
    if size > MAX_MEDIA_BYTES:
        raise ValueError(
            f"{what}: {str(path)!r} is {size} bytes; the most one media file may hold is {MAX_MEDIA_BYTES}."
        )
    return source.read_bytes()


def check_bytes(size: int, what: str) -> None:
    if size > MAX_MEDIA_BYTES:
        raise ValueError(f"{what} is {size} bytes; the most one media object may hold is {MAX_MEDIA_BYTES} bytes.")
