"""`Audio`: samples (a 1-D array, or samples × channels) with a `sample_rate`, or an audio file.

Arrays are written by the writer as 16-bit PCM WAV (the standard library's `wave`); files are
stored as they are.
"""

from __future__ import annotations

import os
from typing import Any

from branchline.sdk.media.base import Media, array_of, check_bytes, read_file

__all__ = ["Audio"]


class Audio(Media):
    """Audio logged as a run file with an `audio-file` descriptor."""

    kind = "audio"

    def __init__(self, data_or_path: Any, sample_rate: int | None = None, caption: str | None = None) -> None:
        self.caption = None if caption is None else str(caption)
        self.sample_rate = sample_rate
        self._file: bytes | None = None
        self._raw: dict[str, Any] = {}
        if isinstance(data_or_path, str | os.PathLike):
            self._file = read_file(data_or_path, "Audio")
            self.format = os.fspath(data_or_path).rsplit(".", 1)[-1].lower()
            return
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError("Audio: an array of samples needs sample_rate= (a positive integer, samples per second).")
        import numpy as np

        array = array_of(data_or_path, "Audio")
        if array.ndim not in (1, 2) or array.size == 0 or array.dtype.kind not in "iuf":
            raise ValueError(
                f"Audio: expected a non-empty 1-D array of samples (or samples × channels) of numbers, "
                f"got {array.dtype} {array.shape}."
            )
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ValueError("Audio: the samples hold NaN or infinite values.")
        check_bytes(array.nbytes, f"Audio: an array of shape {array.shape}")
        self.format = "wav"
        self._raw = {
            "data": np.ascontiguousarray(array).tobytes(),
            "shape": list(array.shape),
            "dtype": array.dtype.str,
        }

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = dict(self._raw)
        if self._file is not None:
            body["file"] = self._file
        body["format"] = self.format
        if self.sample_rate is not None:
            body["sample_rate"] = int(self.sample_rate)
        if self.caption is not None:
            body["caption"] = self.caption
        return body

    def __repr__(self) -> str:
        return f"<Audio {self.format} caption={self.caption!r}>"
