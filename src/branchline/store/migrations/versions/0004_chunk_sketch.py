"""History chunks keep a sketch of their extremes, so chart overviews need not decode every point,
and an index that lists a run's keys without reading the chunks.

Revision ID: 0004_chunk_sketch
Revises: 0003_auth

The upgrade fills in the sketch of every full chunk already stored.
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from branchline.store.history import CHUNK_SIZE, decode_steps, decode_values, encode_sketch

revision = "0004_chunk_sketch"
down_revision = "0003_auth"
branch_labels = None
depends_on = None

_PAGE = 500


def upgrade() -> None:
    op.add_column("history_chunks", sa.Column("sketch", sa.LargeBinary, nullable=True))
    op.create_index(
        "ix_history_chunks_keys", "history_chunks", ["incarnation_id", "stream", "key", "count", "last_step"]
    )
    conn = op.get_bind()
    chunks = sa.table(
        "history_chunks",
        sa.column("incarnation_id", sa.String),
        sa.column("stream", sa.SmallInteger),
        sa.column("key", sa.String),
        sa.column("chunk", sa.Integer),
        sa.column("first_step", sa.BigInteger),
        sa.column("count", sa.Integer),
        sa.column("dtype", sa.String),
        sa.column("steps", sa.LargeBinary),
        sa.column("vals", sa.LargeBinary),
        sa.column("sketch", sa.LargeBinary),
    )
    c = chunks.c
    key_columns = (c.incarnation_id, c.stream, c.key, c.chunk)
    after: tuple[Any, ...] | None = None
    while True:
        query = sa.select(*key_columns, c.first_step, c.count, c.dtype, c.steps, c.vals).where(c.count >= CHUNK_SIZE)
        if after is not None:
            query = query.where(sa.tuple_(*key_columns) > sa.tuple_(*after))
        rows = conn.execute(query.order_by(*key_columns).limit(_PAGE)).all()
        if not rows:
            break
        updates = []
        for inc_id, stream, key, chunk, first_step, count, dtype, steps_blob, vals_blob in rows:
            steps = decode_steps(steps_blob, first_step, count)
            sketch = encode_sketch(steps, decode_values(vals_blob, dtype))
            if sketch is not None:
                updates.append({"i": inc_id, "s": stream, "k": key, "n": chunk, "sk": sketch})
        if updates:
            conn.execute(
                chunks.update()
                .where(
                    c.incarnation_id == sa.bindparam("i"),
                    c.stream == sa.bindparam("s"),
                    c.key == sa.bindparam("k"),
                    c.chunk == sa.bindparam("n"),
                )
                .values(sketch=sa.bindparam("sk")),
                updates,
            )
        after = tuple(rows[-1][:4])


def downgrade() -> None:
    op.drop_index("ix_history_chunks_keys", table_name="history_chunks")
    op.drop_column("history_chunks", "sketch")
