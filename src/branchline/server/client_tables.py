"""The wandb client's tables and their media files, read from the run's `run_table` artifacts.

The wandb client's table run file holds plain cells only; the whole table, image cells included,
is an entry of a `run_table` artifact the run logged, and the cells' files are entries beside it
(see `branchline.artifacts.run_tables`, whose rules `branchline.Api` uses too). The media routes
use these to serve the full table in place of the run file, and an image cell's file by its path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from branchline.artifacts import run_tables
from branchline.server import blobs_api
from branchline.server.routes_data import _file_location
from branchline.server.settings import ServerSettings
from branchline.store.artifacts import LOGGED, EntryRow, VersionRow
from branchline.store.interface import StoreInterface

__all__ = ["artifact_file", "full_table"]

_SUFFIX = ".table.json"


def _table_versions(store: StoreInterface, incarnation_id: str) -> list[VersionRow]:
    return [row for row in store.run_artifacts(incarnation_id, LOGGED) if row.type == run_tables.RUN_TABLE]


def _blob_bytes(settings: ServerSettings, digest: str) -> bytes:
    found = blobs_api.stored_file(settings, digest)
    if found is None:
        raise FileNotFoundError(digest)
    if isinstance(found, Path):
        return found.read_bytes()
    return b"".join(found)


def _run_file_bytes(store: StoreInterface, settings: ServerSettings, incarnation_id: str, rel: str) -> bytes | None:
    location = _file_location(settings.resolved_files_dir(), incarnation_id, rel)
    if location is not None:
        return location.read_bytes()
    digests = {str(row["path"]): str(row["sha256"]) for row in store.files(incarnation_id)}
    try:
        return _blob_bytes(settings, digests[rel]) if rel in digests else None
    except FileNotFoundError:
        return None


def full_table(
    store: StoreInterface, settings: ServerSettings, incarnation_id: str, rel: str, artifact_path: str | None
) -> dict[str, Any] | None:
    """The whole table whose plain cells the run file `rel` holds, from a `run_table` artifact the
    incarnation logged; None when the file is not a wandb client's table (or the artifact is gone).

    `artifact_path` is the descriptor's (the media values route puts it in the file's URL); without
    it (the Files tab) the descriptor is the first history value of the table's key naming `rel`.
    """
    if not rel.endswith(_SUFFIX):
        return None
    versions = _table_versions(store, incarnation_id)
    if not versions:
        return None
    raw = _run_file_bytes(store, settings, incarnation_id, rel)
    try:
        plain = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    if not isinstance(plain, dict) or not isinstance(plain.get("columns"), list):
        return None
    entries = {row.id: store.artifact_entries(row.id) for row in versions}
    history: dict[str, list[tuple[int, Any]]] = {}

    def logged(key: str) -> list[tuple[int, Any]]:
        if key not in history:
            history[key] = store.read_objects(incarnation_id, key)
        return history[key]

    descriptor: dict[str, Any] | None = None
    if artifact_path is not None:
        descriptor = {"_type": "table-file", "path": rel, "artifact_path": artifact_path}
    else:
        names = dict.fromkeys(e.path for found in entries.values() for e in found if e.path.endswith(_SUFFIX))
        for table_name in names:
            values = logged(table_name.removesuffix(_SUFFIX))
            descriptor = next((v for _, v in values if run_tables.is_client_table(v) and v["path"] == rel), None)
            if descriptor is not None:
                break
    name = run_tables.entry_name(descriptor)
    if descriptor is None or name is None:
        return None
    key = name.removesuffix(_SUFFIX)
    candidates = [e for row in versions for e in entries[row.id] if e.path == name and e.ref is None]

    def read(entry: EntryRow) -> bytes:
        return _blob_bytes(settings, entry.digest)

    try:
        return run_tables.pick_table(descriptor, plain, candidates, logged(key), read)
    except FileNotFoundError:
        return None


def artifact_file(store: StoreInterface, incarnation_id: str, rel: str, sha256: str | None) -> str | None:
    """The blob digest of a file at `rel` inside a `run_table` artifact the incarnation logged (an
    image cell of a wandb client's table): the one with content `sha256` when given, else the newest."""
    found = None
    for row in _table_versions(store, incarnation_id):
        for entry in store.artifact_entries(row.id):
            if entry.path == rel and entry.ref is None and (sha256 is None or entry.digest == sha256):
                found = entry.digest
    return found
