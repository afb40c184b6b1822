"""The writer's media stage: MEDIA records become run files, and history rows get their descriptors.

A MEDIA record (raw content, from the training thread) is encoded here, its file stored in the
run's file storage under wandb's path shape `media/<folder>/<key>_<step>_<sha256[:20]>.<ext>`,
and the record replaced by a FILE record with the same sequence number, so the store applies it
as any run file (idempotent on the sequence). The history rows that follow hold placeholders
(`{"_type": "media-ref", "seq": n}`), and so do the summary edits of media set on `run.summary`
directly; they are replaced by the file's descriptor in the shape the wandb client sends (`_type`,
`path`, `sha256`, `size`, and the type's own fields).

An encoding failure is reported once and never stops the writer: the value becomes null.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from branchline.sdk.media.prepare import REF
from branchline.vocab import RecordKind

__all__ = ["MediaStage", "media_path"]

_MEDIA = int(RecordKind.MEDIA)
_HISTORY = int(RecordKind.HISTORY)
_FILE = int(RecordKind.FILE)
_SUMMARY = int(RecordKind.SUMMARY)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-/]")

Upload = Callable[[list[tuple[str, Path, str]]], None]


def media_path(folder: str, key: str, step: int, sha256: str, ext: str) -> str:
    """The run-file path of a media file (wandb's shape); a key's `/` keeps its folders."""
    parts = [p for p in _UNSAFE.sub("_", key).split("/") if p not in ("", ".", "..")]
    name = "/".join(parts) or "media"
    return f"media/{folder}/{name}_{step}_{sha256[:20]}.{ext}"


def _is_ref(value: Any) -> bool:
    return type(value) is dict and value.get("_type") == REF


def _image(descriptor: Any) -> bool:
    return type(descriptor) is dict and descriptor.get("_type") == "image-file"


def separated(images: list[dict[str, Any]]) -> dict[str, Any]:
    """A list of images under one key, as the wandb client logs it (`images/separated`), plus each
    image's own descriptor under `images` (its sha256 and size, for reading it back)."""
    first = images[0]
    value: dict[str, Any] = {
        "_type": "images/separated",
        "width": first["width"],
        "height": first["height"],
        "format": first["format"],
        "count": len(images),
        "filenames": [d["path"] for d in images],
    }
    if any("caption" in d for d in images):
        value["captions"] = [d.get("caption") for d in images]
    value["images"] = images
    return value


class MediaStage:
    """Turns one run's MEDIA records into stored files and fills descriptors into history rows."""

    def __init__(self, files_dir: Path, upload: Upload | None = None, report: Callable[[str], None] | None = None):
        self.files_dir = files_dir
        self.upload = upload
        self.report = report
        self.descriptors: dict[int, dict[str, Any] | None] = {}
        self._reported: set[str] = set()
        # Files a server has not taken yet: retried with the next batches, at most every few seconds.
        self.unsent: list[tuple[str, Path, str]] = []
        self._next_try = 0.0

    def transform(self, records: list[list[Any]]) -> list[list[Any]]:
        """`records` with MEDIA records stored (as FILE records) and history placeholders filled."""
        if not self.descriptors and not self.unsent and not any(int(r[1]) == _MEDIA for r in records):
            return records  # the common case: no media in this run (yet)
        out: list[list[Any]] = []
        stored: list[tuple[str, Path, str]] = []
        for record in records:
            kind = int(record[1])
            if kind == _MEDIA:
                file_record = self._store(record, stored)
                if file_record is not None:
                    out.append(file_record)
            elif kind == _HISTORY:
                out.append([*record[:5], self.resolve(record[5])])
            elif kind == _SUMMARY:  # media set on run.summary directly
                out.append([*record[:2], [[path, self.resolve(value)] for path, value in record[2]], *record[3:]])
            else:
                out.append(record)
        if self.upload is not None:
            self.unsent.extend(stored)
            self._send()
        return out

    def _send(self) -> None:
        now = time.monotonic()
        if not self.unsent or self.upload is None or now < self._next_try:
            return
        try:
            self.upload(self.unsent)
            self.unsent = []
        except Exception as exc:  # the server: the files stay local and are tried again
            self._next_try = now + 5.0
            self._say("upload", f"could not upload media files to the server (will retry): {type(exc).__name__}: {exc}")

    def resolve(self, value: Any) -> Any:
        """`value` with every media placeholder replaced by its descriptor (null if it failed)."""
        if type(value) is dict:
            if value.get("_type") == REF:
                return self.descriptors.get(int(value.get("seq", 0)))
            return {k: self.resolve(v) for k, v in value.items()}
        if type(value) is list:
            items = [self.resolve(v) for v in value]
            if items and all(_is_ref(v) for v in value) and all(_image(d) for d in items):
                return separated(items)
            return items
        return value

    def _store(self, record: list[Any], stored: list[tuple[str, Path, str]]) -> list[Any] | None:
        from branchline.sdk.media.encode import encode

        seq, _, key, step, kind, payload = record
        try:
            children = {name: self.resolve(ref) for name, ref in (payload.get("children") or {}).items()}
            encoded = encode(kind, payload, children)
            sha = hashlib.sha256(encoded.data).hexdigest()
            path = media_path(encoded.folder, key, int(step), sha, encoded.ext)
            self._write(path, encoded.data)
        except Exception as exc:
            self.descriptors[int(seq)] = None
            self._say(
                f"{kind}:{type(exc).__name__}", f"could not store the {kind} logged as {key!r} at step {step}: {exc}"
            )
            return None
        size = len(encoded.data)
        self.descriptors[int(seq)] = {
            "_type": encoded.type,
            "path": path,
            "sha256": sha,
            "size": size,
            **encoded.fields,
        }
        stored.append((path, self.files_dir / path, sha))
        return [seq, _FILE, path, size, sha, time.time()]

    def _write(self, path: str, data: bytes) -> None:
        dest = self.files_dir / path
        with contextlib.suppress(OSError):
            if dest.stat().st_size == len(data):
                return  # named by its content's hash: stored already (a replay)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _say(self, key: str, message: str) -> None:
        if key in self._reported:
            return
        self._reported.add(key)
        if self.report is not None:
            self.report(message)
        else:
            print(f"branchline: {message}", file=sys.stderr, flush=True)


def stage_for(
    journal: Path,
    incarnation_id: str,
    sink: Any,
    run_path: str = "",
    report: Callable[[str], None] | None = None,
) -> MediaStage:
    """The stage for a run's journal: files go where `run.save()` files go; to a server too."""
    from types import SimpleNamespace

    from branchline.sdk.sink import run_file_uploader

    files_dir = journal.parent.parent.parent / "files" / incarnation_id
    uploader = run_file_uploader(sink)
    upload: Upload | None = None
    if uploader is not None:
        entity, project = ([*run_path.split("/"), "", ""])[:2]
        start: Any = SimpleNamespace(entity=entity, project=project, incarnation_id=incarnation_id)

        def upload(files: list[tuple[str, Path, str]]) -> None:
            uploader.upload_run_files(start, files)

    return MediaStage(files_dir, upload, report)
