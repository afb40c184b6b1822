"""Run privacy and paused time: a run can be private to its entity inside a public project, and an
incarnation keeps the seconds it spent paused (finished or crashed, then resumed), so Runtime (wall
clock, pauses included) and Duration (active time, pauses excluded) are both known.

Revision ID: 0006_run_privacy
Revises: 0005_workspaces

Runs stored before this revision are public within their project and count no pause: their
Runtime equals their Duration.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_run_privacy"
down_revision = "0005_workspaces"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("private", sa.Boolean, nullable=False, server_default=sa.false()))
    op.add_column("incarnations", sa.Column("paused", sa.Float, nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("incarnations", "paused")
    op.drop_column("runs", "private")
