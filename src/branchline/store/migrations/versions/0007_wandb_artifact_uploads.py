"""Artifact uploads in flight over the W&B protocol, kept in the store so every server replica sees
them and a restart between `CreateArtifact` and `CommitArtifact` loses nothing.

Revision ID: 0007_wandb_artifact_uploads
Revises: 0006_run_privacy

One row per upload (what `CreateArtifact` named, and the manifest's entries once it arrived), and
one row per file stored for it, so replicas that receive a client's files at the same time never
overwrite each other's.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_wandb_artifact_uploads"
down_revision = "0006_run_privacy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wandb_artifact_uploads",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("client_id", sa.String(128), nullable=True),
        sa.Column("entity", sa.String(128), nullable=False),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("artifact_metadata", sa.Text, nullable=False),
        sa.Column("aliases", sa.Text, nullable=False),
        sa.Column("incarnation_id", sa.String(32), nullable=True),
        sa.Column("entries", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("committed_at", sa.Float, nullable=True),
    )
    op.create_index("ix_wandb_artifact_uploads_client", "wandb_artifact_uploads", ["client_id"])
    op.create_index("ix_wandb_artifact_uploads_created", "wandb_artifact_uploads", ["created_at"])
    op.create_table(
        "wandb_artifact_upload_files",
        sa.Column("upload_id", sa.String(32), sa.ForeignKey("wandb_artifact_uploads.id"), primary_key=True),
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("wandb_artifact_upload_files")
    op.drop_index("ix_wandb_artifact_uploads_created", "wandb_artifact_uploads")
    op.drop_index("ix_wandb_artifact_uploads_client", "wandb_artifact_uploads")
    op.drop_table("wandb_artifact_uploads")
