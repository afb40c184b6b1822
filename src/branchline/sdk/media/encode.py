"""Encoding media in the writer process: raw content from a MEDIA record into a file's bytes.

Each encoder takes the record's payload (and the descriptors of the media it refers to) and
returns the file's folder under `media/`, its extension, its bytes, the descriptor's `_type`
and the type's own descriptor fields. Runs only in the writer (or `branchline sync`), never on
the training thread.
"""

from __future__ import annotations

import io
import json
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Encoded", "encode"]


@dataclass
class Encoded:
    folder: str  # under media/: "images", "table", ...
    ext: str
    data: bytes
    type: str  # the descriptor's _type
    fields: dict[str, Any] = field(default_factory=dict)


def _array(payload: dict[str, Any]) -> Any:
    import numpy as np

    return np.frombuffer(payload["data"], dtype=np.dtype(payload["dtype"])).reshape(payload["shape"])


def _to_uint8(array: Any, normalize: bool) -> Any:
    """Pixels as uint8: floats in [0, 1] (or [-1, 1]) are scaled to 0..255; the rest is clipped."""
    import numpy as np

    if array.dtype == np.uint8:
        return array
    if array.dtype.kind == "f":
        values = np.nan_to_num(array.astype(np.float64), nan=0.0)
        if normalize and values.size:
            if values.min() < 0:
                values = (values + 1.0) / 2.0
            if values.max() <= 1.0:
                values = values * 255.0
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return np.clip(array, 0, 255).astype(np.uint8)


def _pil() -> Any:
    try:
        from PIL import Image as PILImage
    except ImportError:
        raise RuntimeError("storing images needs Pillow: pip install 'branchline[media]'") from None
    return PILImage


def _save(picture: Any, file_type: str) -> bytes:
    kind = {"jpg": "JPEG", "jpeg": "JPEG"}.get(file_type, file_type.upper())
    if kind == "JPEG" and picture.mode not in ("L", "RGB"):
        picture = picture.convert("RGB")
    out = io.BytesIO()
    picture.save(out, format=kind)
    return out.getvalue()


def _picture(payload: dict[str, Any]) -> Any:
    """A PIL image from an image payload's pixels (an array or a PIL image's bytes)."""
    pil = _pil()
    if "pil" in payload:
        return pil.frombytes(payload["pil_mode"], tuple(payload["size"]), payload["pil"])
    array = _array(payload)
    if payload.get("layout") == "chw":
        array = array.transpose(1, 2, 0)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    picture = pil.fromarray(_to_uint8(array, bool(payload.get("normalize", True))))
    mode = payload.get("mode")
    return picture.convert(mode) if mode and mode != picture.mode else picture


def _image(payload: dict[str, Any], children: dict[str, Any]) -> Encoded:
    file_type = str(payload.get("format") or "png")
    if "file" in payload:
        data = payload["file"]
        with _pil().open(io.BytesIO(data)) as opened:
            width, height = opened.size
    else:
        picture = _picture(payload)
        width, height = picture.size
        data = _save(picture, file_type)
    fields: dict[str, Any] = {"format": file_type, "width": width, "height": height}
    for name in ("caption", "grouping"):
        if payload.get(name) is not None:
            fields[name] = payload[name]
    boxes = {name[6:]: desc for name, desc in children.items() if name.startswith("boxes:") and desc}
    if boxes:
        fields["boxes"] = boxes
    masks = {name[5:]: desc for name, desc in children.items() if name.startswith("mask:") and desc}
    if masks:
        fields["masks"] = masks
    return Encoded("images", file_type, data, "image-file", fields)


def _mask(payload: dict[str, Any], children: dict[str, Any]) -> Encoded:
    data = payload["file"] if "file" in payload else _save(_pil().fromarray(_array(payload)), "png")
    return Encoded("images/mask", "mask.png", data, "mask", {"class_labels": payload.get("class_labels") or {}})


def _boxes(payload: dict[str, Any], children: dict[str, Any]) -> Encoded:
    """A box set as the wandb client stores it: `{"box_data": [...], "class_labels": {...}}`."""
    body: dict[str, Any] = {name: payload[name] for name in ("box_data", "class_labels") if name in payload}
    data = json.dumps(body, separators=(",", ":"), allow_nan=True).encode("utf-8")
    # The boxes inline too, so a reader (the web app) draws them without fetching the file.
    return Encoded("metadata/boxes2D", "boxes2D.json", data, "boxes2D", dict(body))


def _table(payload: dict[str, Any], children: dict[str, Any]) -> Encoded:
    rows = [list(row) for row in payload["data"]]
    for name, desc in children.items():
        _, r, c = name.split(":")
        rows[int(r)][int(c)] = desc
    columns = list(payload["columns"])
    body = {"_type": "table", "columns": columns, "data": rows, "ncols": len(columns), "nrows": len(rows)}
    data = json.dumps(body, separators=(",", ":"), allow_nan=True).encode("utf-8")
    fields: dict[str, Any] = {"ncols": len(columns), "nrows": len(rows)}
    if payload.get("chart"):
        fields["chart"] = payload["chart"]  # a plot.* preset: which columns the chart draws
    return Encoded("table", "table.json", data, "table-file", fields)


def _wav(payload: dict[str, Any]) -> bytes:
    import numpy as np

    samples = _array(payload)
    if samples.dtype.kind == "f":
        pcm = np.clip(np.rint(samples.astype(np.float64) * 32767.0), -32768, 32767).astype("<i2")
    elif samples.dtype.itemsize == 2 and samples.dtype.kind == "i":
        pcm = samples.astype("<i2")
    else:
        pcm = np.clip(samples, -32768, 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1 if pcm.ndim == 1 else pcm.shape[1])
        writer.setsampwidth(2)
        writer.setframerate(int(payload["sample_rate"]))
        writer.writeframes(pcm.tobytes())
    return out.getvalue()


def _audio(payload: dict[str, Any], children: dict[str, Any]) -> Encoded:
    fmt = str(payload.get("format") or "wav")
    data = payload["file"] if "file" in payload else _wav(payload)
    fields = {k: payload[k] for k in ("sample_rate", "caption") if payload.get(k) is not None}
    return Encoded("audio", fmt, data, "audio-file", fields)


def _video(payload: dict[str, Any], children: dict[str, Any]) -> Encoded:
    fmt = str(payload.get("format") or "gif")
    fields: dict[str, Any] = {"format": fmt, "fps": payload.get("fps", 4)}
    if payload.get("caption") is not None:
        fields["caption"] = payload["caption"]
    if "file" in payload:
        return Encoded("videos", fmt, payload["file"], "video-file", fields)
    pil = _pil()
    frames = _to_uint8(_array(payload).transpose(0, 2, 3, 1), True)
    if frames.shape[3] == 1:
        frames = frames[:, :, :, 0]
    pictures = [pil.fromarray(frame) for frame in frames]
    out = io.BytesIO()
    duration = max(1, round(1000 / float(fields["fps"])))
    pictures[0].save(out, format="GIF", save_all=True, append_images=pictures[1:], duration=duration, loop=0)
    fields["width"], fields["height"] = pictures[0].size
    return Encoded("videos", "gif", out.getvalue(), "video-file", fields)


def _html(payload: dict[str, Any], children: dict[str, Any]) -> Encoded:
    return Encoded("html", "html", payload["file"], "html-file", {})


_ENCODERS: dict[str, Callable[[dict[str, Any], dict[str, Any]], Encoded]] = {
    "image": _image,
    "mask": _mask,
    "boxes2D": _boxes,
    "table": _table,
    "audio": _audio,
    "video": _video,
    "html": _html,
}


def encode(kind: str, payload: dict[str, Any], children: dict[str, Any]) -> Encoded:
    """The file for one MEDIA record (raises on content that cannot be encoded)."""
    return _ENCODERS[kind](payload, children)
