"""Reading logged media back: a descriptor's file (following fork and rewind lineage), a table.

History values of media are descriptors (`{"_type": "image-file", "path": ..., "sha256": ...}`);
the file belongs to the incarnation that logged it, which for a fork's inherited steps is its
source. So the content is looked up along the incarnation's `forked_from` chain.

The wandb client keeps a logged table in a `run_table` artifact (`run-<run id>-<key>`, whose
`<key>.table.json` holds the cells, media as descriptors of files inside the artifact); the run
file beside it has the plain cells only. So a table whose descriptor names such an artifact
(`artifact_path`) is read from the artifact the run logged, and a media file not among the run's
files is looked up in the run's logged artifacts by path and sha256.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from branchline.artifacts import run_tables
from branchline.errors import UsageError
from branchline.store.interface import ApiBackend, RunView

__all__ = ["FILE_TYPES", "images_of", "media_bytes", "save_media", "table_frame"]

#: Descriptor types that point at a run file.
FILE_TYPES = frozenset({"image-file", "table-file", "audio-file", "video-file", "html-file", "mask", "boxes2D"})
_MAX_HOPS = 64


def images_of(value: Any) -> list[dict[str, Any]]:
    """The image descriptors of a list of images logged under one key (`images/separated`)."""
    if not isinstance(value, dict) or value.get("_type") != "images/separated":
        raise UsageError(f"{str(value)[:80]!r} is not a list of images (_type images/separated).")
    if isinstance(value.get("images"), list):
        return list(value["images"])
    # As the wandb client logs it: file names only.
    return [{"_type": "image-file", "path": name} for name in value.get("filenames") or []]


def _descriptor(value: Any) -> dict[str, Any]:
    if isinstance(value, dict) and value.get("_type") == "images/separated":
        raise UsageError(
            f"This is a list of {value.get('count')} images; read each one: "
            "branchline.api.media.images_of(descriptor) lists their descriptors."
        )
    if not isinstance(value, dict) or value.get("_type") not in FILE_TYPES or not isinstance(value.get("path"), str):
        raise UsageError(
            f"{str(value)[:80]!r} is not a media descriptor; expected a history value with _type one of "
            f"{', '.join(sorted(FILE_TYPES))} and a path."
        )
    return value


def media_bytes(backend: ApiBackend, view: RunView, value: Any) -> bytes:
    """The content of the file a media descriptor names, checked against its sha256."""
    descriptor = _descriptor(value)
    path, sha = descriptor["path"], descriptor.get("sha256")
    current: RunView | None = view
    for _ in range(_MAX_HOPS):
        if current is None:
            break
        listed = {row["path"]: row for row in backend.files(current.incarnation_id)}
        row = listed.get(path)
        if row is not None and (sha is None or row["sha256"] == sha):
            data = backend.read_file(current.incarnation_id, path)
            if sha is not None and hashlib.sha256(data).hexdigest() != sha:
                raise UsageError(f"The stored content of {path!r} does not match its sha256.")
            return data
        parent = current.forked_from
        current = backend.get_incarnation(str(parent["incarnation_id"])) if parent else None
    found = _artifact_file(backend, view, path, sha)
    if found is not None:
        return found
    raise UsageError(f"No stored file {path!r} in run {view.entity}/{view.project}/{view.run_id} or its sources.")


def _logged_tables(backend: ApiBackend, view: RunView) -> list[Any]:
    """The `run_table` artifact versions the run logged (the wandb client's tables), oldest first."""
    from branchline.artifacts import public

    return [a for a in public.logged_artifacts(backend, view.incarnation_id) if a.type == run_tables.RUN_TABLE]


def _entry_bytes(entry: Any) -> bytes:
    with tempfile.TemporaryDirectory(prefix="branchline-media-") as where:
        return Path(entry.download(where)).read_bytes()


def _artifact_file(backend: ApiBackend, view: RunView, path: str, sha: Any) -> bytes | None:
    """A media file the wandb client stored inside a table's artifact (an image cell), by path and sha256."""
    if not isinstance(sha, str):
        return None
    for artifact in _logged_tables(backend, view):
        try:
            entry = artifact.get_entry(path)
        except KeyError:
            continue
        if entry.digest == sha:
            return _entry_bytes(entry)
    return None


def _artifact_table(backend: ApiBackend, view: RunView, descriptor: dict[str, Any], plain: Any) -> Any:
    """The table a wandb client's descriptor names, from the run's `run_table` artifact; None if not found."""
    name = run_tables.entry_name(descriptor)
    if name is None or not isinstance(plain, dict):
        return None
    candidates = []
    for artifact in _logged_tables(backend, view):
        try:
            candidates.append(artifact.get_entry(name))
        except KeyError:
            continue
    logged = backend.read_objects(view.incarnation_id, name.removesuffix(".table.json")) if len(candidates) > 1 else []
    return run_tables.pick_table(descriptor, plain, candidates, logged, _entry_bytes)


def save_media(backend: ApiBackend, view: RunView, value: Any, root: str | Path, replace: bool = True) -> Path:
    """Write a media descriptor's file under `root` (keeping its path); returns where."""
    descriptor = _descriptor(value)
    target = Path(root) / str(descriptor["path"])
    if target.exists() and not replace:
        return target
    data = media_bytes(backend, view, descriptor)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


def table_frame(backend: ApiBackend, view: RunView, value: Any) -> Any:
    """A logged table as a pandas DataFrame (media cells as their descriptors, which `media_bytes` reads)."""
    import pandas as pd

    descriptor = _descriptor(value)
    if descriptor["_type"] != "table-file":
        raise UsageError(f"{descriptor['path']!r} is a {descriptor['_type']}, not a table-file.")
    body = json.loads(media_bytes(backend, view, descriptor))
    if "artifact_path" in descriptor:  # the wandb client's: the cells are in the artifact
        body = _artifact_table(backend, view, descriptor, body) or body
    return pd.DataFrame(body["data"], columns=body["columns"])
