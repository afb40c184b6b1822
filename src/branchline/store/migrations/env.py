"""Alembic environment: runs migrations on the connection handed over by `engine.upgrade`."""

from __future__ import annotations

from alembic import context

from branchline.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("branchline migrations run through `branchline db upgrade`.")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
