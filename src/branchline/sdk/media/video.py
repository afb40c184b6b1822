"""`Video`: frames (a T×C×H×W array, C in 1, 3 or 4) at `fps`, or a video file.

Arrays are encoded by the writer as an animated GIF with Pillow: no video codec library is
needed. A `format` other than "gif" for an array is stored as GIF all the same, with a warning.
Files (mp4, webm, ogg, gif) are stored as they are.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from branchline.sdk.media.base import Media, array_of, check_bytes, read_file

__all__ = ["Video", "VIDEO_FORMATS"]

VIDEO_FORMATS = ("gif", "mp4", "webm", "ogg")


class Video(Media):
    """A video logged as a run file with a `video-file` descriptor."""

    kind = "video"

    def __init__(
        self, data_or_path: Any, caption: str | None = None, fps: int | None = None, format: str | None = None
    ) -> None:
        self.caption = None if caption is None else str(caption)
        if fps is not None and (isinstance(fps, bool) or not isinstance(fps, int | float) or not 0 < fps <= 1000):
            raise ValueError(f"Video(fps={fps!r}): expected a frame rate from 1 to 1000.")
        self.fps = fps or 4
        self._file: bytes | None = None
        self._raw: dict[str, Any] = {}
        if isinstance(data_or_path, str | os.PathLike):
            self.format = (format or os.fspath(data_or_path).rsplit(".", 1)[-1]).lower()
            if self.format not in VIDEO_FORMATS:
                raise ValueError(f"Video: format {self.format!r} is not one of {', '.join(VIDEO_FORMATS)}.")
            self._file = read_file(data_or_path, "Video")
            return
        if format is not None and format.lower() != "gif":
            warnings.warn(
                f"Video(format={format!r}): frames are stored as an animated GIF (no video encoder is bundled).",
                stacklevel=2,
            )
        self.format = "gif"
        import numpy as np

        array = array_of(data_or_path, "Video")
        if array.ndim != 4 or array.shape[1] not in (1, 3, 4) or array.dtype.kind not in "buif":
            raise ValueError(
                f"Video: expected a T×C×H×W array of pixels with C in 1, 3 or 4, got {array.dtype} {array.shape}."
            )
        check_bytes(array.nbytes, f"Video: an array of shape {array.shape} and dtype {array.dtype}")
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
        body["fps"] = self.fps
        if self.caption is not None:
            body["caption"] = self.caption
        return body

    def __repr__(self) -> str:
        return f"<Video {self.format} caption={self.caption!r}>"
