"""The initial schema: projects, runs, incarnations, chunked history, console, files, alerts.

Revision ID: 0001_initial
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copy of the types used at this revision: later schema edits must not change it.
_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("entity", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("public", sa.Boolean, nullable=False),
        sa.UniqueConstraint("entity", "name", name="uq_projects_entity_name"),
    )
    op.create_table(
        "runs",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("current_incarnation", sa.String(32), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("notes", sa.Text, nullable=False),
        sa.Column("tags", _json, nullable=False),
        sa.Column("run_group", sa.String(256), nullable=False),
        sa.Column("job_type", sa.String(256), nullable=False),
        sa.Column("host", sa.String(256), nullable=False),
        sa.Column("username", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("stop_requested", sa.Boolean, nullable=False),
        sa.UniqueConstraint("project_id", "run_id", name="uq_runs_project_run_id"),
    )
    op.create_index("ix_runs_project_created", "runs", ["project_id", "created_at"])
    op.create_table(
        "incarnations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("run_pk", sa.Integer, sa.ForeignKey("runs.pk"), nullable=True),
        sa.Column("ordinal", sa.Integer, nullable=False),
        sa.Column("parent_id", sa.String(32), sa.ForeignKey("incarnations.id"), nullable=True),
        sa.Column("parent_step", sa.BigInteger, nullable=True),
        sa.Column("branch_kind", sa.String(16), nullable=True),
        sa.Column("archived", sa.Boolean, nullable=False),
        sa.Column("archived_at", sa.Float, nullable=True),
        sa.Column("detached_path", sa.String(512), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("exit_code", sa.Integer, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("pid", sa.Integer, nullable=True),
        sa.Column("host", sa.String(256), nullable=False),
        sa.Column("starting_step", sa.BigInteger, nullable=False),
        sa.Column("last_step", sa.BigInteger, nullable=False),
        sa.Column("runtime", sa.Float, nullable=False),
        sa.Column("config", _json, nullable=False),
        sa.Column("summary", _json, nullable=False),
        sa.Column("metrics", _json, nullable=False),
        sa.Column("run_metadata", _json, nullable=False),
    )
    op.create_index("ix_incarnations_run", "incarnations", ["run_pk"])
    op.create_index("ix_incarnations_parent", "incarnations", ["parent_id"])
    op.create_table(
        "history_chunks",
        sa.Column("incarnation_id", sa.String(32), primary_key=True),
        sa.Column("stream", sa.SmallInteger, primary_key=True),
        sa.Column("key", sa.String(512), primary_key=True),
        sa.Column("chunk", sa.Integer, primary_key=True),
        sa.Column("first_step", sa.BigInteger, nullable=False),
        sa.Column("last_step", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("dtype", sa.String(2), nullable=False),
        sa.Column("steps", sa.LargeBinary, nullable=False),
        sa.Column("vals", sa.LargeBinary, nullable=False),
        sa.Column("vmin", sa.Float, nullable=True),
        sa.Column("vmax", sa.Float, nullable=True),
        sa.Column("vsum", sa.Float, nullable=True),
        sa.Column("vcount", sa.Integer, nullable=False),
    )
    op.create_table(
        "history_values",
        sa.Column("incarnation_id", sa.String(32), primary_key=True),
        sa.Column("stream", sa.SmallInteger, primary_key=True),
        sa.Column("key", sa.String(512), primary_key=True),
        sa.Column("step", sa.BigInteger, primary_key=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "console_lines",
        sa.Column("incarnation_id", sa.String(32), primary_key=True),
        sa.Column("line_no", sa.Integer, primary_key=True),
        sa.Column("stream", sa.String(8), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_table(
        "run_files",
        sa.Column("incarnation_id", sa.String(32), primary_key=True),
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "writer_sessions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("incarnation_id", sa.String(32), sa.ForeignKey("incarnations.id"), nullable=False),
        sa.Column("applied_seq", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
    )
    op.create_index("ix_writer_sessions_incarnation_id", "writer_sessions", ["incarnation_id"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("incarnation_id", sa.String(32), nullable=False),
        sa.Column("title", sa.String(256), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
    )
    op.create_index("ix_alerts_incarnation_id", "alerts", ["incarnation_id"])


def downgrade() -> None:
    for table in (
        "alerts",
        "writer_sessions",
        "run_files",
        "console_lines",
        "history_values",
        "history_chunks",
        "incarnations",
        "runs",
        "projects",
    ):
        op.drop_table(table)
