"""Saved workspace layouts: one editable panel layout per project (and view), kept on the server.

Revision ID: 0005_workspaces
Revises: 0004_chunk_sketch
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_workspaces"
down_revision = "0004_chunk_sketch"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workspaces",
        sa.Column("entity", sa.String(128), primary_key=True),
        sa.Column("project", sa.String(128), primary_key=True),
        sa.Column("view", sa.String(32), primary_key=True),
        sa.Column("layout", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("workspaces")
