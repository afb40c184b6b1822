"""The store's tables (SQLAlchemy Core). Changes here need a new Alembic migration."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

from branchline.schema_revision import SCHEMA_REVISION

__all__ = [
    "metadata",
    "projects",
    "runs",
    "incarnations",
    "history_chunks",
    "history_values",
    "console_lines",
    "run_files",
    "alerts",
    "writer_sessions",
    "artifact_collections",
    "artifact_versions",
    "artifact_entries",
    "artifact_aliases",
    "artifact_usage",
    "users",
    "api_keys",
    "teams",
    "team_members",
    "workspaces",
    "wandb_artifact_uploads",
    "wandb_artifact_upload_files",
    "SCHEMA_REVISION",
]


class Json(TypeDecorator[Any]):
    """JSON, stored as JSONB on PostgreSQL so filters on config/summary can use its operators and
    indexes. The PostgreSQL dialect is imported only when PostgreSQL is used: SQLite users (and every
    `init()`) do not pay for it."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())


metadata = MetaData()

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entity", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("public", Boolean, nullable=False, default=False),
    UniqueConstraint("entity", "name", name="uq_projects_entity_name"),
)

runs = Table(
    "runs",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("run_id", String(128), nullable=False),
    Column("current_incarnation", String(32), nullable=False),
    Column("name", String(256), nullable=False),
    Column("notes", Text, nullable=False, default=""),
    Column("tags", Json, nullable=False),
    Column("run_group", String(256), nullable=False, default=""),
    Column("job_type", String(256), nullable=False, default=""),
    Column("host", String(256), nullable=False, default=""),
    Column("username", String(256), nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("stop_requested", Boolean, nullable=False, default=False),
    # Revision 0006: a private run is readable by its entity's members only, even in a public project.
    Column("private", Boolean, nullable=False, default=False),
    UniqueConstraint("project_id", "run_id", name="uq_runs_project_run_id"),
    Index("ix_runs_project_created", "project_id", "created_at"),
)

incarnations = Table(
    "incarnations",
    metadata,
    Column("id", String(32), primary_key=True),
    # NULL once the run is deleted while forks still read this incarnation's history.
    Column("run_pk", Integer, ForeignKey("runs.pk"), nullable=True),
    Column("ordinal", Integer, nullable=False),
    Column("parent_id", String(32), ForeignKey("incarnations.id"), nullable=True),
    Column("parent_step", BigInteger, nullable=True),
    Column("branch_kind", String(16), nullable=True),  # "fork" | "rewind" | NULL
    Column("archived", Boolean, nullable=False, default=False),
    Column("archived_at", Float, nullable=True),
    Column("detached_path", String(512), nullable=True),
    Column("state", String(16), nullable=False),
    Column("exit_code", Integer, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Column("pid", Integer, nullable=True),
    Column("host", String(256), nullable=False, default=""),
    Column("starting_step", BigInteger, nullable=False, default=0),
    Column("last_step", BigInteger, nullable=False, default=-1),
    # Wall-clock seconds since the start, pauses included (the SDK clock continues past a pause).
    Column("runtime", Float, nullable=False, default=0.0),
    Column("config", Json, nullable=False),
    Column("summary", Json, nullable=False),
    Column("metrics", Json, nullable=False),  # define_metric definitions + aggregate state
    Column("run_metadata", Json, nullable=False),
    # Revision 0006: seconds spent paused between a finish (or crash) and a resume; Duration is
    # runtime - paused.
    Column("paused", Float, nullable=False, default=0.0),
    Index("ix_incarnations_run", "run_pk"),
    Index("ix_incarnations_parent", "parent_id"),
)

history_chunks = Table(
    "history_chunks",
    metadata,
    Column("incarnation_id", String(32), primary_key=True),
    Column("stream", SmallInteger, primary_key=True),  # 0 = history, 1 = system
    Column("key", String(512), primary_key=True),
    Column("chunk", Integer, primary_key=True),
    Column("first_step", BigInteger, nullable=False),
    Column("last_step", BigInteger, nullable=False),
    Column("count", Integer, nullable=False),
    Column("dtype", String(2), nullable=False),
    Column("steps", LargeBinary, nullable=False),
    Column("vals", LargeBinary, nullable=False),
    # Per-chunk aggregates so summaries over a prefix of history never decode full chunks.
    Column("vmin", Float, nullable=True),
    Column("vmax", Float, nullable=True),
    Column("vsum", Float, nullable=True),
    Column("vcount", Integer, nullable=False, default=0),
    # Full chunks only: each block's extremes (history.encode_sketch), for chart overviews.
    Column("sketch", LargeBinary, nullable=True),
    # Listing a run's keys (count, last step) from the index alone: rows hold the blobs, so a scan
    # of the table reads every chunk of every key.
    Index("ix_history_chunks_keys", "incarnation_id", "stream", "key", "count", "last_step"),
)

history_values = Table(
    "history_values",
    metadata,
    Column("incarnation_id", String(32), primary_key=True),
    Column("stream", SmallInteger, primary_key=True),
    Column("key", String(512), primary_key=True),
    Column("step", BigInteger, primary_key=True),
    Column("value", LargeBinary, nullable=False),  # msgpack
)

console_lines = Table(
    "console_lines",
    metadata,
    Column("incarnation_id", String(32), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("stream", String(8), nullable=False),
    Column("ts", Float, nullable=False),
    Column("text", Text, nullable=False),
)

run_files = Table(
    "run_files",
    metadata,
    Column("incarnation_id", String(32), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("updated_at", Float, nullable=False),
)

# One row per SDK session writing to an incarnation: applying a journal is idempotent on
# (session, sequence number), and a resumed run continues its incarnation in a new session.
writer_sessions = Table(
    "writer_sessions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("incarnation_id", String(32), ForeignKey("incarnations.id"), nullable=False, index=True),
    Column("applied_seq", Integer, nullable=False, default=0),
    Column("started_at", Float, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incarnation_id", String(32), nullable=False, index=True),
    Column("title", String(256), nullable=False),
    Column("text", Text, nullable=False),
    Column("level", String(8), nullable=False),
    Column("ts", Float, nullable=False),
)

# -- artifacts (revision 0002) -------------------------------------------------------------------
# A collection is one artifact name in one project; its versions are v0, v1, ... Blobs live in a
# content-addressed blob store outside the database: the rows only name them by sha256.

artifact_collections = Table(
    "artifact_collections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("type", String(128), nullable=False),
    Column("description", Text, nullable=False, default=""),
    # Version numbers are never reused, even after a version is deleted.
    Column("next_version", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("project_id", "name", name="uq_artifact_collections_project_name"),
)

artifact_versions = Table(
    "artifact_versions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("collection_id", Integer, ForeignKey("artifact_collections.id"), nullable=False),
    Column("version_index", Integer, nullable=False),
    Column("digest", String(64), nullable=False),  # sha256 over the sorted manifest
    Column("description", Text, nullable=True),
    Column("artifact_metadata", Json, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("file_count", Integer, nullable=False),
    # The incarnation that first logged it (no foreign key: deleting a run keeps its artifacts).
    Column("created_by", String(32), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("collection_id", "version_index", name="uq_artifact_versions_index"),
    UniqueConstraint("collection_id", "digest", name="uq_artifact_versions_digest"),
    Index("ix_artifact_versions_created_by", "created_by"),
)

artifact_entries = Table(
    "artifact_entries",
    metadata,
    Column("version_id", String(32), ForeignKey("artifact_versions.id"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    # sha256 hex of the content (stored blobs and file:// references) or the ETag of an s3:// one.
    Column("digest", String(128), nullable=False),
    Column("size", BigInteger, nullable=True),
    Column("ref", Text, nullable=True),  # NULL: the content is the blob named by `digest`
    Column("extra", Json, nullable=True),
    Index("ix_artifact_entries_digest", "digest"),
)

artifact_aliases = Table(
    "artifact_aliases",
    metadata,
    Column("collection_id", Integer, ForeignKey("artifact_collections.id"), primary_key=True),
    Column("alias", String(128), primary_key=True),
    Column("version_id", String(32), ForeignKey("artifact_versions.id"), nullable=False),
    Index("ix_artifact_aliases_version", "version_id"),
)

# Lineage: which incarnations logged ("logged") or used ("used") which versions, across projects.
artifact_usage = Table(
    "artifact_usage",
    metadata,
    Column("version_id", String(32), ForeignKey("artifact_versions.id"), primary_key=True),
    Column("incarnation_id", String(32), primary_key=True),
    Column("role", String(8), primary_key=True),
    Column("at", Float, nullable=False),
    Index("ix_artifact_usage_incarnation", "incarnation_id", "role"),
)

# -- auth and tenancy (revision 0003) --------------------------------------------------------------
# An entity is a user's own name or a team's; users and teams share that namespace. API keys are
# stored as salted sha256 digests, looked up by their public id (part of the key itself).

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("email", String(256), nullable=False, default=""),
    Column("admin", Boolean, nullable=False, default=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(16), primary_key=True),  # public: the key's 12 characters after "bl_"
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("name", String(128), nullable=False, default=""),
    Column("salt", String(32), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
)

teams = Table(
    "teams",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

team_members = Table(
    "team_members",
    metadata,
    Column("team_id", Integer, ForeignKey("teams.id"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("role", String(16), nullable=False),  # "admin" | "member"
    Column("added_at", Float, nullable=False),
    Index("ix_team_members_user", "user_id"),
)

# -- saved workspaces (revision 0005) ---------------------------------------------------------------
# The edited panel layout of a project's workspace ("project") or of its run pages ("run"), as the
# JSON text the server validated; absent means the automatic layout. `version` grows by one on each
# save so two editors cannot silently overwrite each other.

workspaces = Table(
    "workspaces",
    metadata,
    Column("entity", String(128), primary_key=True),
    Column("project", String(128), primary_key=True),
    Column("view", String(32), primary_key=True),
    Column("layout", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(64), nullable=True),
)

# -- artifact uploads in flight over the W&B protocol (revision 0007) ------------------------------
# What `CreateArtifact` named until `CommitArtifact` (JSON as text: the store does not query inside
# it), and each file stored for it, one row per file so replicas receiving files at once never
# overwrite each other. A committed upload stays (`committed_at`) so its client id still maps to
# the version; every row is dropped a day after it was created.

wandb_artifact_uploads = Table(
    "wandb_artifact_uploads",
    metadata,
    Column("id", String(32), primary_key=True),  # becomes the version's id
    Column("client_id", String(128), nullable=True),
    Column("entity", String(128), nullable=False),
    Column("project", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("type", String(128), nullable=False),
    Column("digest", String(128), nullable=False),
    Column("description", Text, nullable=True),
    Column("artifact_metadata", Text, nullable=False),
    Column("aliases", Text, nullable=False),
    Column("incarnation_id", String(32), nullable=True),
    Column("entries", Text, nullable=True),  # the manifest's entries once it was uploaded
    Column("created_at", Float, nullable=False),
    Column("committed_at", Float, nullable=True),
    Index("ix_wandb_artifact_uploads_client", "client_id"),
    Index("ix_wandb_artifact_uploads_created", "created_at"),
)

wandb_artifact_upload_files = Table(
    "wandb_artifact_upload_files",
    metadata,
    Column("upload_id", String(32), ForeignKey("wandb_artifact_uploads.id"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
)
