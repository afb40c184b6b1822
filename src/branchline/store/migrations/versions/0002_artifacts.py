"""Artifacts: collections, versions, manifest entries, aliases and lineage.

Revision ID: 0002_artifacts
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_artifacts"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

# Frozen copy of the types used at this revision: later schema edits must not change it.
_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "artifact_collections",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("next_version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("project_id", "name", name="uq_artifact_collections_project_name"),
    )
    op.create_table(
        "artifact_versions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("collection_id", sa.Integer, sa.ForeignKey("artifact_collections.id"), nullable=False),
        sa.Column("version_index", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("artifact_metadata", _json, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("file_count", sa.Integer, nullable=False),
        sa.Column("created_by", sa.String(32), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("collection_id", "version_index", name="uq_artifact_versions_index"),
        sa.UniqueConstraint("collection_id", "digest", name="uq_artifact_versions_digest"),
    )
    op.create_index("ix_artifact_versions_created_by", "artifact_versions", ["created_by"])
    op.create_table(
        "artifact_entries",
        sa.Column("version_id", sa.String(32), sa.ForeignKey("artifact_versions.id"), primary_key=True),
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=True),
        sa.Column("ref", sa.Text, nullable=True),
        sa.Column("extra", _json, nullable=True),
    )
    op.create_index("ix_artifact_entries_digest", "artifact_entries", ["digest"])
    op.create_table(
        "artifact_aliases",
        sa.Column("collection_id", sa.Integer, sa.ForeignKey("artifact_collections.id"), primary_key=True),
        sa.Column("alias", sa.String(128), primary_key=True),
        sa.Column("version_id", sa.String(32), sa.ForeignKey("artifact_versions.id"), nullable=False),
    )
    op.create_index("ix_artifact_aliases_version", "artifact_aliases", ["version_id"])
    op.create_table(
        "artifact_usage",
        sa.Column("version_id", sa.String(32), sa.ForeignKey("artifact_versions.id"), primary_key=True),
        sa.Column("incarnation_id", sa.String(32), primary_key=True),
        sa.Column("role", sa.String(8), primary_key=True),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_artifact_usage_incarnation", "artifact_usage", ["incarnation_id", "role"])


def downgrade() -> None:
    for table in (
        "artifact_usage",
        "artifact_aliases",
        "artifact_entries",
        "artifact_versions",
        "artifact_collections",
    ):
        op.drop_table(table)
