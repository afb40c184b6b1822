"""`Image`: numpy HW / HWC / CHW arrays (uint8, bool, int or float), PIL images, torch tensors, files.

Only shape, dtype and size are checked here; the pixels travel raw to the writer, which scales,
transposes and encodes them (sdk/media/encode.py). As the wandb client does, each box set is
stored as a `boxes2D` JSON run file and each mask as a PNG run file, referred to from the image's
descriptor; a box set's descriptor also carries its boxes inline (`box_data`, `class_labels`).
"""

from __future__ import annotations

import os
from typing import Any

from branchline.sdk.media.base import Media, array_of, check_bytes, read_file, short

__all__ = ["Image", "FILE_TYPES", "MAX_SIDE"]

#: Formats the writer encodes arrays and PIL images into (`file_type=`).
FILE_TYPES = ("png", "jpg", "jpeg", "gif", "bmp", "webp")
#: Longest side of an image, in pixels (PNG and the browser's canvas limits).
MAX_SIDE = 65_535
_CHANNELS = (1, 3, 4)
_DTYPE_KINDS = "buif"  # bool, unsigned, signed, float


def _layout(shape: tuple[int, ...], what: str) -> str:
    """'hw', 'hwc' or 'chw' for an image array's shape, or ValueError saying what is accepted."""
    if len(shape) == 2:
        return "hw"
    if len(shape) == 3:
        if shape[-1] in _CHANNELS:
            return "hwc"
        if shape[0] in _CHANNELS:
            return "chw"
    raise ValueError(
        f"{what}: an array of shape {shape} is not an image; expected H×W, H×W×C or C×H×W with C in 1, 3 or 4."
    )


class _Mask(Media):
    """A segmentation mask (an H×W array of class ids), stored as a PNG run file."""

    kind = "mask"

    def __init__(self, name: str, spec: Any) -> None:
        what = f"Image mask {name!r}"
        if not isinstance(spec, dict) or ("mask_data" not in spec and "path" not in spec):
            raise ValueError(f"{what}: expected a dict with 'mask_data' (an H×W array) or 'path', got {short(spec)}.")
        self.class_labels = {str(k): str(v) for k, v in (spec.get("class_labels") or {}).items()}
        self._file: bytes | None = None
        if "path" in spec:
            self._file = read_file(spec["path"], what)
            return
        array = array_of(spec["mask_data"], what)
        if array.ndim != 2 or array.dtype.kind not in "bui":
            raise ValueError(
                f"{what}: mask_data must be an H×W array of integer class ids, got {array.dtype} {array.shape}."
            )
        import numpy as np

        self._array = np.ascontiguousarray(array.astype(np.uint8, copy=False))

    def payload(self) -> dict[str, Any]:
        if self._file is not None:
            return {"file": self._file, "class_labels": self.class_labels}
        return {
            "data": self._array.tobytes(),
            "shape": list(self._array.shape),
            "dtype": "uint8",
            "class_labels": self.class_labels,
        }


class _Boxes(Media):
    """A set of bounding boxes, stored as a `boxes2D` JSON run file (the wandb client's shape)."""

    kind = "boxes2D"

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    def payload(self) -> dict[str, Any]:
        return dict(self.spec)


def _boxes(boxes: Any) -> dict[str, Any]:
    if not isinstance(boxes, dict):
        raise TypeError(f"Image(boxes=...): expected a dict of box sets, got {short(boxes)}.")
    from branchline.sdk.values import normalize

    out: dict[str, Any] = {}
    for name, spec in boxes.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("box_data"), list):
            raise ValueError(
                f"Image(boxes={{{name!r}: ...}}): expected a dict with a 'box_data' list, got {short(spec)}."
            )
        try:
            out[str(name)] = normalize(spec)
        except TypeError as exc:
            raise TypeError(f"Image(boxes={{{name!r}: ...}}): {exc}") from None
        for i, box in enumerate(out[str(name)]["box_data"]):
            if not isinstance(box, dict) or not isinstance(box.get("position"), dict):
                raise ValueError(
                    f"Image(boxes={{{name!r}: ...}}): box_data[{i}] is {short(box)}; expected a dict with a "
                    "'position' ({'minX', 'maxX', 'minY', 'maxY'} or {'middle', 'width', 'height'})."
                )
    return out


class Image(Media):
    """An image logged as a PNG (or `file_type`) run file with an `image-file` descriptor."""

    kind = "image"

    def __init__(
        self,
        data_or_path: Any,
        mode: str | None = None,
        caption: str | None = None,
        grouping: int | None = None,
        classes: Any = None,
        boxes: dict[str, Any] | None = None,
        masks: dict[str, Any] | None = None,
        file_type: str | None = None,
        normalize: bool = True,
    ) -> None:
        if file_type is not None and file_type.lower() not in FILE_TYPES:
            raise ValueError(f"Image(file_type={file_type!r}): expected one of {', '.join(FILE_TYPES)}.")
        self.mode = mode
        self.caption = None if caption is None else str(caption)
        self.grouping = grouping
        self.normalize = bool(normalize)
        self.file_type = (file_type or "png").lower()
        self.boxes = _boxes(boxes) if boxes is not None else None
        self.masks = {str(n): _Mask(str(n), m) for n, m in (masks or {}).items()}
        self._file: bytes | None = None
        self._raw: dict[str, Any] = {}
        if isinstance(data_or_path, str | os.PathLike):
            self._file = read_file(data_or_path, "Image")
            ext = os.fspath(data_or_path).rsplit(".", 1)[-1].lower()
            self.file_type = file_type.lower() if file_type else ext
        elif type(data_or_path).__module__.startswith("PIL."):
            self._from_pil(data_or_path)
        elif isinstance(data_or_path, Image):
            self.__dict__.update({k: v for k, v in data_or_path.__dict__.items() if k not in ("caption", "mode")})
        else:
            self._from_array(data_or_path)

    def _from_pil(self, picture: Any) -> None:
        width, height = picture.size
        self._check_size(width, height, "a PIL image")
        mode = self.mode or picture.mode
        if picture.mode != mode:
            picture = picture.convert(mode)
        self._raw = {"pil": picture.tobytes(), "pil_mode": picture.mode, "size": [width, height]}

    def _from_array(self, value: Any) -> None:
        import numpy as np

        array = array_of(value, "Image")
        if array.dtype.kind == "O" or array.ndim == 0:
            raise TypeError(
                f"Image: {short(value)} (a {type(value).__name__}) is not an image; expected a numpy array or "
                "torch tensor of pixels, a PIL image, or a path to an image file."
            )
        if array.dtype.kind not in _DTYPE_KINDS:
            raise TypeError(
                f"Image: an array of dtype {array.dtype} is not an image; expected uint8, bool, int or float pixels."
            )
        layout = _layout(array.shape, "Image")
        height, width = array.shape[1:] if layout == "chw" else array.shape[:2]
        self._check_size(width, height, f"an array of shape {array.shape}")
        check_bytes(array.nbytes, f"Image: an array of shape {array.shape} and dtype {array.dtype}")
        if array.dtype.kind == "b":
            array = array.astype(np.uint8) * 255
        # A copy: the caller may reuse its buffer before the writer reads the journal.
        self._raw = {
            "data": np.ascontiguousarray(array).tobytes(),
            "shape": list(array.shape),
            "dtype": array.dtype.str,
            "layout": layout,
        }

    @staticmethod
    def _check_size(width: int, height: int, what: str) -> None:
        if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
            raise ValueError(
                f"Image: {what} is {width}×{height} pixels; each side must be from 1 to {MAX_SIDE} pixels."
            )

    @classmethod
    def from_figure(cls, figure: Any, caption: str | None = None) -> Image:
        """A matplotlib figure, rendered to RGBA pixels (drawing must happen on the caller's thread)."""
        import numpy as np

        figure.canvas.draw()
        pixels = np.asarray(figure.canvas.buffer_rgba())
        return cls(pixels, mode="RGBA", caption=caption)

    def children(self) -> dict[str, Media]:
        boxes = {f"boxes:{name}": _Boxes(spec) for name, spec in (self.boxes or {}).items()}
        return {**{f"mask:{name}": mask for name, mask in self.masks.items()}, **boxes}

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = dict(self._raw)
        if self._file is not None:
            body["file"] = self._file
        body["format"] = self.file_type
        body["normalize"] = self.normalize
        if self.mode is not None:
            body["mode"] = self.mode
        if self.caption is not None:
            body["caption"] = self.caption
        if self.grouping is not None:
            body["grouping"] = int(self.grouping)
        return body

    def __repr__(self) -> str:
        return f"<Image {self.file_type} caption={self.caption!r}>"
