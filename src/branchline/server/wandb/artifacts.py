"""Artifacts over the W&B protocol, stored as branchline's own artifact versions.

Logging (`run.log_artifact`): `CreateArtifact` answers `COMMITTED` when the collection already
holds a version with the client's digest (the client then uploads nothing), else an upload in
flight whose id becomes the version's id. `CreateArtifactFiles` hands one signed upload URL per
file (none for content this server already holds, by MD5), the manifest goes up through
`CreateArtifactManifest`'s URL, and `CommitArtifact` commits the version with its entries and
aliases in one store transaction (`ArtifactIndex.commit_artifact`), recording the run that logged
it. The files are blobs by sha256, like every branchline artifact, so `branchline.Api()` and the
web app read them as they read ours; each entry keeps the client's MD5 in `extra["md5"]`.

Reading (`use_artifact`, `api.artifact(name)`, `download()`): versions by name and alias or by
id, the manifest and every file through signed, expiring download URLs (artifact_files.py), and
`UseArtifact` records the run as a user. Versions logged with our SDK are served too (their MD5s
are computed when first asked).

Uploads in flight live in the store (`PendingUploads`, for at most a day), so a client's
requests may reach any replica behind a load balancer and a server may restart between
`CreateArtifact` and `CommitArtifact`. Each process keeps only a cache of the MD5s of content it
received, to hand no upload URL for content stored already.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections import OrderedDict
from typing import Any

from branchline.errors import UsageError
from branchline.server.blob_storage import blob_store
from branchline.server.errors import ApiError
from branchline.server.wandb.buckets import _iso
from branchline.server.wandb.context import WandbContext, input_of
from branchline.store.interface import EntryRow, PendingUpload, RunView, StoreInterface, VersionRow

__all__ = ["MANIFEST_PATH", "OPERATIONS", "Upload", "Uploads", "manifest_json", "uploads_of"]

#: The signed path that names a version's manifest (no entry path may be empty).
MANIFEST_PATH = ""
_MD5_CACHE = 100_000
_PAGE = 5000
_GUARD = threading.Lock()


# -- uploads in flight -------------------------------------------------------------------------------------
#: An artifact the client is uploading (kept in the store: see store/pending_uploads.py).
Upload = PendingUpload


class Uploads:
    """One server process's cache of the MD5 → (sha256, size) of content it received.

    Only a shortcut: the uploads themselves are in the store, and a replica that never saw some
    content simply hands an upload URL for it (the blob is stored once, by sha256)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.md5s: OrderedDict[str, tuple[str, int]] = OrderedDict()

    def remember(self, md5: str, sha256: str, size: int) -> None:
        with self.lock:
            self.md5s[md5] = (sha256, size)
            self.md5s.move_to_end(md5)
            while len(self.md5s) > _MD5_CACHE:
                self.md5s.popitem(last=False)

    def known(self, md5: str) -> tuple[str, int] | None:
        with self.lock:
            return self.md5s.get(md5)


def uploads_of(app: Any) -> Uploads:
    """The app's MD5 cache (one per app)."""
    with _GUARD:
        found: Uploads | None = getattr(app.state, "wandb_uploads", None)
        if found is None:
            found = app.state.wandb_uploads = Uploads()
    return found


# -- shapes the client reads -------------------------------------------------------------------------------
def _project(entity: str, project: str) -> dict[str, Any]:
    return {
        "__typename": "Project",
        "id": f"{entity}/{project}",
        "internalId": f"{entity}/{project}",
        "name": project,
        "entityName": entity,
        "entity": {"__typename": "Entity", "id": entity, "name": entity},
    }


def _collection(entity: str, project: str, name: str, type_: str) -> dict[str, Any]:
    return {
        "__typename": "ArtifactSequence",
        "id": f"{entity}/{project}/{name}",
        "name": name,
        "project": _project(entity, project),
        "artifactType": {"__typename": "ArtifactType", "name": type_},
        "digestAlgorithm": "MANIFEST_MD5",
    }


def _run_info(run: RunView) -> dict[str, Any]:
    return {
        "__typename": "Run",
        "id": run.incarnation_id,
        "name": run.run_id,
        "displayName": run.name,
        "project": _project(run.entity, run.project),
    }


def artifact_node(ctx: WandbContext, row: VersionRow) -> dict[str, Any]:
    """A committed version as the client's `ArtifactFragment` (and a bit more) reads it."""
    collection = _collection(row.entity, row.project, row.name, row.type)
    # The version ("vN") is listed as an alias too, as clients expect (they set it apart themselves).
    aliases = [
        {"__typename": "ArtifactAlias", "id": f"{row.collection_id}:{a}", "alias": a, "artifactCollection": collection}
        for a in [*row.aliases, row.version]
    ]
    return {
        "__typename": "Artifact",
        "id": row.id,
        "artifactSequence": collection,
        "artifactCollection": collection,
        "versionIndex": row.version_index,
        "artifactType": {"__typename": "ArtifactType", "name": row.type},
        "description": row.description,
        "metadata": json.dumps(row.metadata, allow_nan=True),
        "ttlDurationSeconds": -2,
        "ttlIsInherited": True,
        "tags": [],
        "historyStep": None,
        "state": "COMMITTED",
        "size": row.size,
        "digest": row.digest,
        "digestAlgorithm": "MANIFEST_MD5",
        "commitHash": row.digest[:12],
        "fileCount": row.file_count,
        "createdAt": _iso(row.created_at),
        "updatedAt": _iso(row.updated_at),
        "aliases": aliases,
        "currentManifest": lambda: _manifest_node(ctx, row.id),
        "files": _FilesConnection(ctx, row),
        "usedBy": lambda: _runs_connection(ctx, ctx.store.artifact_users(row.id, "used")),
        "createdBy": lambda: _created_by(ctx, row.id),
    }


def _pending_node(upload: Upload) -> dict[str, Any]:
    collection = _collection(upload.entity, upload.project, upload.name, upload.type)
    return {
        "__typename": "Artifact",
        "id": upload.id,
        "artifactSequence": collection,
        "artifactCollection": collection,
        "versionIndex": None,
        "artifactType": {"__typename": "ArtifactType", "name": upload.type},
        "description": upload.description,
        "metadata": json.dumps(upload.metadata, allow_nan=True),
        "ttlDurationSeconds": -2,
        "ttlIsInherited": True,
        "tags": [],
        "historyStep": None,
        "state": "PENDING",
        "size": 0,
        "digest": upload.digest,
        "digestAlgorithm": "MANIFEST_MD5",
        "commitHash": None,
        "fileCount": 0,
        "createdAt": _iso(upload.created_at),
        "updatedAt": _iso(upload.created_at),
        "aliases": [],
    }


def _membership(ctx: WandbContext, row: VersionRow) -> dict[str, Any]:
    node = artifact_node(ctx, row)
    return {
        "__typename": "ArtifactCollectionMembership",
        "id": f"{row.collection_id}:{row.version_index}",
        "versionIndex": row.version_index,
        "createdAt": node["createdAt"],
        "aliases": node["aliases"],
        "artifactCollection": node["artifactSequence"],
        "artifact": node,
        "files": _FilesConnection(ctx, row),
    }


def _runs_connection(ctx: WandbContext, incarnation_ids: list[str]) -> dict[str, Any]:
    edges = []
    for inc in incarnation_ids:
        run = ctx.sees(ctx.store.get_incarnation(inc))  # private runs are left out for non-members
        if run is not None:
            edges.append({"node": _run_info(run)})
    return {"edges": edges, "totalCount": len(edges)}


def _created_by(ctx: WandbContext, version_id: str) -> dict[str, Any] | None:
    users = ctx.store.artifact_users(version_id, "logged")
    run = ctx.sees(ctx.store.get_incarnation(users[0])) if users else None
    return None if run is None else _run_info(run)


def _manifest_node(ctx: WandbContext, version_id: str) -> dict[str, Any]:
    url = f"{ctx.base_url}/wandb/artifacts/{ctx.signer.sign('AGET', version_id, MANIFEST_PATH)}"
    return {
        "__typename": "ArtifactManifest",
        "id": f"{version_id}:manifest",
        "file": {"__typename": "File", "id": f"{version_id}:manifest", "name": "wandb_manifest.json", "directUrl": url},
    }


def _file_node(ctx: WandbContext, row: VersionRow, entry: EntryRow) -> dict[str, Any]:
    # A reference has no stored content: its URL is where it points (the client fetches it itself).
    signed = f"{ctx.base_url}/wandb/artifacts/{ctx.signer.sign('AGET', row.id, entry.path)}"
    url = entry.ref if entry.ref is not None else signed
    return {
        "__typename": "File",
        "id": f"{row.id}:{entry.path}",
        "name": entry.path,
        "displayName": entry.path.rsplit("/", 1)[-1],
        "sizeBytes": entry.size or 0,
        "directUrl": url,
        "url": url,
        "digest": (entry.extra or {}).get("md5") or entry.digest,
        "storagePath": entry.digest,
    }


class _FilesConnection:
    """`files(after:, first:, names:)`: a version's entries with download URLs, paged by position."""

    wants_args = True

    def __init__(self, ctx: WandbContext, row: VersionRow) -> None:
        self.ctx, self.row = ctx, row

    def __call__(self, args: dict[str, Any]) -> dict[str, Any]:
        entries = self.ctx.store.artifact_entries(self.row.id)
        names = args.get("names")
        if isinstance(names, list):
            wanted = set(map(str, names))
            entries = [e for e in entries if e.path in wanted]
        start = int(args["after"]) if str(args.get("after") or "").isdigit() else 0
        count = int(args.get("first") or _PAGE)
        page = entries[start : start + count]
        end = start + len(page)
        return {
            "__typename": "FileConnection",
            "totalCount": len(entries),
            "pageInfo": {"__typename": "PageInfo", "endCursor": str(end), "hasNextPage": end < len(entries)},
            "edges": [{"__typename": "FileEdge", "node": _file_node(self.ctx, self.row, e)} for e in page],
        }


# -- finding versions --------------------------------------------------------------------------------------
def _split(name: str) -> tuple[str, str]:
    base, sep, spec = name.partition(":")
    return base, (spec if sep and spec else "latest")


def _where(ctx: WandbContext, variables: dict[str, Any]) -> tuple[str, str]:
    source = input_of(variables)
    entity = ctx.entity(source.get("entity") or source.get("entityName"))
    project = str(source.get("project") or source.get("projectName") or "uncategorized")
    ctx.check(entity, project)
    return entity, project


def _resolve(ctx: WandbContext, entity: str, project: str, name: str) -> VersionRow | None:
    base, spec = _split(name)
    return ctx.store.resolve_artifact(entity, project, base, spec)


def _by_id(ctx: WandbContext, version_id: Any) -> VersionRow | None:
    if not isinstance(version_id, str) or not version_id:
        return None
    row = ctx.store.get_artifact(version_id)
    if row is not None:
        ctx.check(row.entity, row.project)
    return row


def _run_of(ctx: WandbContext, entity: str, project: str, run_id: Any) -> RunView | None:
    if not isinstance(run_id, str) or not run_id:
        return None
    return ctx.store.get_run(entity, project, run_id)


# -- logging -----------------------------------------------------------------------------------------------
def create_artifact(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """Start logging a version, or find the one with the same digest (`COMMITTED`: nothing to upload)."""
    source = input_of(variables)
    entity = ctx.entity(source.get("entityName"))
    project = str(source.get("projectName") or "uncategorized")
    ctx.check(entity, project, write=True)
    names = source.get("artifactCollectionNames")
    # Older clients name the collection in a list.
    listed = names[0] if isinstance(names, list) and names else ""
    name = str(source.get("artifactCollectionName") or listed or "")
    type_ = str(source.get("artifactTypeName") or "")
    digest = str(source.get("digest") or "")
    if not name or not type_ or not digest:
        raise ApiError(400, "CreateArtifact needs artifactCollectionName, artifactTypeName and digest.")
    aliases = _alias_names(source.get("aliases"))
    raw_meta = source.get("metadata")
    try:
        metadata = json.loads(raw_meta) if isinstance(raw_meta, str) and raw_meta else raw_meta or {}
    except ValueError:
        raise ApiError(400, "CreateArtifact's metadata is not a JSON object.", field="metadata") from None
    if not isinstance(metadata, dict):
        raise ApiError(400, "CreateArtifact's metadata must be a JSON object.", field="metadata")
    run = _run_of(ctx, entity, project, source.get("runName"))
    versions = ctx.store.artifact_versions(entity, project, name)
    if versions and versions[0].type != type_:
        raise ApiError(
            409, f"Artifact {name!r} in {entity}/{project} has type {versions[0].type!r}, not {type_!r}.", field="type"
        )
    same = next((v for v in versions if v.digest == digest), None)
    if same is not None and source.get("enableDigestDeduplication", True) is not False:
        # The content is stored already: move the aliases to it and record the run as its logger.
        row, _ = _commit(
            ctx,
            entity,
            project,
            name,
            type_,
            digest,
            ctx.store.artifact_entries(same.id),
            source.get("description"),
            metadata,
            aliases,
            run,
        )
        node = artifact_node(ctx, row)
    else:
        upload = Upload(
            id=secrets.token_hex(16),
            entity=entity,
            project=project,
            name=name,
            type=type_,
            digest=digest,
            description=source.get("description") if isinstance(source.get("description"), str) else None,
            metadata=metadata,
            aliases=aliases,
            incarnation_id=None if run is None else run.incarnation_id,
            client_id=str(source.get("clientID") or "") or None,
            created_at=ctx.now,
        )
        ctx.store.drop_stale_uploads()
        ctx.store.create_pending_upload(upload)
        node = _pending_node(upload)
    node["artifactSequence"]["latestArtifact"] = {"__typename": "Artifact", "id": versions[0].id} if versions else None
    return {"createArtifact": {"artifact": node}}


def _commit(
    ctx: WandbContext,
    entity: str,
    project: str,
    name: str,
    type_: str,
    digest: str,
    entries: list[EntryRow],
    description: Any,
    metadata: dict[str, Any],
    aliases: list[str],
    run: RunView | None,
    version_id: str | None = None,
) -> tuple[VersionRow, bool]:
    try:
        found: tuple[VersionRow, bool] = ctx.store.commit_artifact(
            entity=entity,
            project=project,
            name=name,
            type=type_,
            digest=digest,
            entries=entries,
            description=description if isinstance(description, str) else None,
            metadata=metadata,
            aliases=aliases,
            incarnation_id=None if run is None else run.incarnation_id,
            role="logged",
            version_id=version_id,
        )
    except UsageError as exc:
        raise ApiError(409, str(exc)) from None
    return found


def _upload(ctx: WandbContext, upload_id: Any) -> Upload:
    upload = ctx.store.get_pending_upload(str(upload_id or ""))
    if upload is None:
        raise ApiError(404, f"No artifact upload {upload_id!r} in flight: log the artifact again.")
    ctx.check(upload.entity, upload.project, write=True)
    return upload


def _manifest_answer(ctx: WandbContext, upload: Upload, key: str) -> dict[str, Any]:
    url = f"{ctx.base_url}/wandb/artifacts/{ctx.signer.sign('APUT', upload.id, MANIFEST_PATH)}"
    manifest = {
        "__typename": "ArtifactManifest",
        "id": f"{upload.id}:manifest",
        "file": {"__typename": "File", "id": f"{upload.id}:manifest", "uploadUrl": url, "uploadHeaders": []},
    }
    return {key: {"artifactManifest": manifest}}


def create_manifest(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """The manifest's upload URL (asked once without it, to learn the manifest id, and once with)."""
    source = input_of(variables)
    return _manifest_answer(ctx, _upload(ctx, source.get("artifactID")), "createArtifactManifest")


def update_manifest(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    source = input_of(variables)
    manifest_id = str(source.get("artifactManifestID") or "")
    return _manifest_answer(ctx, _upload(ctx, manifest_id.split(":", 1)[0]), "updateArtifactManifest")


def create_files(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """One upload URL per file, in order; none for content this server already holds."""
    source = input_of(variables)
    files = source.get("artifactFiles") or variables.get("artifactFiles") or []
    registry = uploads_of(ctx.app) if ctx.app is not None else None
    edges = []
    for item in files if isinstance(files, list) else []:
        upload = _upload(ctx, item.get("artifactID"))
        path, md5 = str(item.get("name") or ""), str(item.get("md5") or "")
        known = registry.known(md5) if md5 and registry is not None else None
        if known is not None and not _blobs(ctx).missing([known[0]]):
            ctx.store.add_pending_upload_file(upload.id, path, *known)
            url: str | None = None
        else:
            url = f"{ctx.base_url}/wandb/artifacts/{ctx.signer.sign('APUT', upload.id, path + chr(10) + md5)}"
        node: dict[str, Any] = {
            "__typename": "File",
            "id": f"{upload.id}:{path}",
            "name": path,
            # Older clients match the answers to their files by `displayName`.
            "displayName": path,
            "storagePath": f"{upload.id}/{path}",
            "uploadUrl": url,
            "uploadHeaders": [],
            "uploadMultipartUrls": None,
            "artifact": {"__typename": "Artifact", "id": upload.id},
        }
        edges.append({"node": node})
    return {"createArtifactFiles": {"files": {"edges": edges}}}


def _blobs(ctx: WandbContext) -> Any:
    return blob_store(ctx.app)


def commit_artifact(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """Commit the version: entries, aliases and the logging run in one transaction."""
    source = input_of(variables)
    version_id = str(source.get("artifactID") or "")
    done = ctx.store.get_artifact(version_id)
    if done is None:
        upload = _upload(ctx, version_id)
        if upload.entries is None:
            raise ApiError(409, "The artifact's manifest was not uploaded: upload it, then commit.")
        run = None if upload.incarnation_id is None else ctx.store.get_incarnation(upload.incarnation_id)
        done, _ = _commit(
            ctx,
            upload.entity,
            upload.project,
            upload.name,
            upload.type,
            upload.digest,
            upload.entries,
            upload.description,
            upload.metadata,
            upload.aliases,
            run,
            upload.id,
        )
        ctx.store.finish_pending_upload(upload.id)
    return {"commitArtifact": {"artifact": artifact_node(ctx, done)}}


def manifest_entries(registry: Uploads, upload: Upload, manifest: dict[str, Any]) -> list[EntryRow]:
    """The client's manifest as our entries: each file by the sha256 of the content it uploaded."""
    contents = manifest.get("contents")
    if not isinstance(contents, dict):
        raise ValueError("the manifest has no `contents` object")
    entries = []
    for path, item in contents.items():
        if not isinstance(item, dict):
            raise ValueError(f"manifest entry {path!r} is not an object")
        digest, size = str(item.get("digest") or ""), item.get("size")
        extra = item.get("extra") if isinstance(item.get("extra"), dict) else None
        if item.get("ref"):
            entries.append(EntryRow(path, digest, size if isinstance(size, int) else None, str(item["ref"]), extra))
            continue
        stored = upload.files.get(path) or registry.known(digest)
        if stored is None:
            raise ValueError(f"the file {path!r} was not uploaded")
        entries.append(EntryRow(path, stored[0], stored[1], None, {**(extra or {}), "md5": digest}))
    return entries


def md5_of(store: StoreInterface, blobs: Any, entry: EntryRow) -> str:
    """The base64 MD5 the client expects of an entry (computed for content our SDK logged)."""
    known = (entry.extra or {}).get("md5")
    if isinstance(known, str):
        return known
    if entry.ref is not None:
        return entry.digest
    h = hashlib.md5(usedforsecurity=False)
    for chunk in blobs.open(entry.digest):
        h.update(chunk)
    return base64.b64encode(h.digest()).decode("ascii")


def manifest_json(store: StoreInterface, blobs: Any, row: VersionRow) -> dict[str, Any]:
    """A version's manifest in the client's own layout (version 1, MD5 digests)."""
    contents: dict[str, Any] = {}
    for entry in store.artifact_entries(row.id):
        item: dict[str, Any] = {"digest": md5_of(store, blobs, entry), "size": entry.size, "birthArtifactID": row.id}
        if entry.ref is not None:
            item["ref"] = entry.ref
        extra = {k: v for k, v in (entry.extra or {}).items() if k != "md5"}
        if extra:
            item["extra"] = extra
        contents[entry.path] = item
    return {
        "version": 1,
        "storagePolicy": "wandb-storage-policy-v1",
        "storagePolicyConfig": {"storageLayout": "V2"},
        "contents": contents,
    }


# -- reading -----------------------------------------------------------------------------------------------
def artifact_by_id(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """`artifact(id:)`: a committed version, or an upload still in flight."""
    found = variables.get("id") or variables.get("artifact_id") or variables.get("artifactID")
    row = _by_id(ctx, found)
    if row is not None:
        return {"artifact": artifact_node(ctx, row)}
    upload = ctx.store.get_pending_upload(str(found or ""))
    return {"artifact": None if upload is None else {**_pending_node(upload), "currentManifest": None}}


def artifact_manifest(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """`ArtifactManifest`: by id (the Go core), or `project { artifact(name:) }` (older clients)."""
    return artifact_by_name(ctx, variables) if variables.get("name") else artifact_by_id(ctx, variables)


def artifact_by_name(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """`project { artifact(name:) / artifactCollectionMembership(name:) }`: `name:alias` or `name:vN`."""
    entity, project = _where(ctx, variables)
    row = _resolve(ctx, entity, project, str(variables.get("name") or ""))
    node = None if row is None else artifact_node(ctx, row)
    membership = None if row is None else _membership(ctx, row)
    answer = {**_project(entity, project), "artifact": node, "artifactCollectionMembership": membership}
    return {"project": answer}


def membership_files(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """`project { artifactCollection(name:) { artifactMembership(aliasName:) { files } } }`."""
    entity, project = _where(ctx, variables)
    collection = str(variables.get("collection") or "")
    row = ctx.store.resolve_artifact(entity, project, collection, str(variables.get("alias") or "latest"))
    if row is None:
        return {"project": {**_project(entity, project), "artifactCollection": None}}
    files = _FilesConnection(ctx, row)({"after": variables.get("cursor"), "first": variables.get("perPage")})
    seq = {**_collection(entity, project, collection, row.type), "artifactMembership": {"files": files}}
    return {"project": {**_project(entity, project), "artifactCollection": seq}}


def files_by_entries(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """`artifact(id:) { filesByManifestEntries(entries:) }`: download URLs for the named entries."""
    row = _by_id(ctx, variables.get("id"))
    if row is None:
        return {"artifact": None}
    names = [str(e.get("name")) for e in variables.get("entries") or [] if isinstance(e, dict)]
    files = _FilesConnection(ctx, row)({"names": names} if names else {})
    return {"artifact": {**artifact_node(ctx, row), "filesByManifestEntries": files}}


def use_artifact(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """Record the run as a user of the version (both variable shapes: flat and `input`)."""
    source = input_of(variables)
    row = _by_id(ctx, source.get("artifactID"))
    if row is None:
        raise ApiError(404, f"No artifact {source.get('artifactID')!r}.", field="artifactID")
    entity = ctx.entity(source.get("entityName"))
    project = str(source.get("projectName") or row.project)
    run = ctx.require_run(entity, project, str(source.get("runName") or ""), write=True)
    ctx.store.use_artifact(row.id, run.incarnation_id)
    return {"useArtifact": {"artifact": artifact_node(ctx, row)}}


def run_artifacts(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """`project { run(name:) { outputArtifacts / inputArtifacts } }`: what a run logged and used."""
    entity, project = _where(ctx, variables)
    run = ctx.find_run(entity, project, str(variables.get("run") or variables.get("runName") or ""))
    if run is None:
        return {"project": {**_project(entity, project), "run": None}}

    def connection(role: str) -> dict[str, Any]:
        rows = ctx.store.run_artifacts(run.incarnation_id, role)
        return {
            "totalCount": len(rows),
            "pageInfo": {"__typename": "PageInfo", "endCursor": str(len(rows)), "hasNextPage": False},
            "edges": [{"node": artifact_node(ctx, r)} for r in rows],
        }

    answer = {
        **_run_info(run),
        "outputArtifacts": lambda: connection("logged"),
        "inputArtifacts": lambda: connection("used"),
    }
    return {"project": {**_project(entity, project), "run": answer}, "entity": {"name": entity}}


def project_artifacts(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """`api.artifacts(type, name)`: a collection's versions, newest first, paged."""
    entity, project = _where(ctx, variables)
    name = str(variables.get("collection") or "")
    rows = [r for r in ctx.store.artifact_versions(entity, project, name) if r.type == variables.get("type")]
    after = str(variables.get("cursor") or "")
    start = int(after) if after.isdigit() else 0
    per_page = variables.get("perPage")
    count = per_page if isinstance(per_page, int) and per_page > 0 else 50
    page = rows[start : start + count]
    end = start + len(page)
    versions = {
        "totalCount": len(rows),
        "pageInfo": {"__typename": "PageInfo", "endCursor": str(end), "hasNextPage": end < len(rows)},
        "edges": [{"version": r.version, "node": artifact_node(ctx, r)} for r in page],
    }
    collection = None
    if rows:
        collection = {**_collection(entity, project, name, rows[0].type), "artifacts": versions}
    kind = {"__typename": "ArtifactType", "name": variables.get("type"), "artifactCollection": collection}
    return {"project": {**_project(entity, project), "artifactType": kind}}


def client_id_mapping(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """The version id an artifact's client id stands for (references between artifacts)."""
    found = ctx.store.pending_upload_by_client_id(str(variables.get("clientID") or ""))
    return {"clientIDMapping": None if found is None else {"serverID": found}}


def digest_algorithm(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """Manifests are MD5 here (no xxhash)."""
    seq = {"__typename": "ArtifactSequence", "digestAlgorithm": "MANIFEST_MD5"}
    return {
        "project": {"artifactType": {"artifactCollection": seq}},
        "entity": {"xxhashDigestsEnabled": False},
    }


def update_artifact(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """`artifact.save()` of a logged version: description, metadata and aliases."""
    source = input_of(variables)
    row = _by_id(ctx, source.get("artifactID"))
    if row is None:
        raise ApiError(404, f"No artifact {source.get('artifactID')!r}.", field="artifactID")
    ctx.check(row.entity, row.project, write=True)
    description = source["description"] if isinstance(source.get("description"), str) else row.description
    metadata = row.metadata
    if isinstance(source.get("metadata"), str):
        try:
            metadata = json.loads(source["metadata"])
        except ValueError:
            raise ApiError(400, "UpdateArtifact's metadata is not JSON.", field="metadata") from None
    if not isinstance(metadata, dict):
        raise ApiError(400, "An artifact's metadata must be a JSON object.", field="metadata")
    ctx.store.update_artifact(row.id, description=description, metadata=metadata)
    aliases = source.get("aliases")
    if isinstance(aliases, list):
        ctx.store.set_artifact_aliases(row.id, _alias_names(aliases))
    updated = ctx.store.get_artifact(row.id) or row
    node = artifact_node(ctx, updated)
    return {"result": {"artifact": node}, "updateArtifact": {"artifact": node}}


def _alias_names(items: Any) -> list[str]:
    """Alias names from `[{alias: …}, …]`, without version names (`vN` is not an alias one sets)."""
    names = [str(a.get("alias")) for a in items or [] if isinstance(a, dict) and a.get("alias")]
    return [n for n in names if not (n[:1] == "v" and n[1:].isdigit())]


def _edit_aliases(ctx: WandbContext, variables: dict[str, Any], *, add: bool) -> dict[str, Any]:
    source = input_of(variables)
    row = _by_id(ctx, source.get("artifactID"))
    if row is None:
        raise ApiError(404, f"No artifact {source.get('artifactID')!r}.", field="artifactID")
    ctx.check(row.entity, row.project, write=True)
    named = _alias_names(source.get("aliases"))
    wanted = [*row.aliases, *named] if add else [a for a in row.aliases if a not in named]
    try:
        ctx.store.set_artifact_aliases(row.id, wanted)
    except UsageError as exc:
        raise ApiError(409, str(exc)) from None
    key = "addAliases" if add else "deleteAliases"
    return {"result": {"success": True}, key: {"success": True}}


def add_aliases(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    """`artifact.aliases.append(…); artifact.save()`: more aliases on a logged version."""
    return _edit_aliases(ctx, variables, add=True)


def delete_aliases(ctx: WandbContext, variables: dict[str, Any]) -> dict[str, Any]:
    return _edit_aliases(ctx, variables, add=False)


OPERATIONS = {
    "ArtifactType": artifact_by_name,
    "CreateArtifact": create_artifact,
    "CreateArtifactManifest": create_manifest,
    "UpdateArtifactManifest": update_manifest,
    "CreateArtifactFiles": create_files,
    "CommitArtifact": commit_artifact,
    "ArtifactByID": artifact_by_id,
    "ArtifactByIDShort": artifact_by_id,
    "ArtifactByName": artifact_by_name,
    "ProjectArtifacts": project_artifacts,
    "ArtifactManifest": artifact_manifest,
    "FetchArtifactManifest": artifact_by_id,
    "ArtifactMembershipByName": artifact_by_name,
    "GetArtifactMembershipFileUrls": membership_files,
    "ArtifactFileURLsByManifestEntries": files_by_entries,
    "ArtifactFileURLs": artifact_by_id,
    "UseArtifact": use_artifact,
    "RunOutputArtifacts": run_artifacts,
    "RunInputArtifacts": run_artifacts,
    "ArtifactUsedBy": artifact_by_id,
    "ArtifactCreatedBy": artifact_by_id,
    "ClientIDMapping": client_id_mapping,
    "FetchArtifactDigestAlgorithm": digest_algorithm,
    "XXHashDigestsEnabled": digest_algorithm,
    "UpdateArtifact": update_artifact,
    "AddAliases": add_aliases,
    "DeleteAliases": delete_aliases,
}
