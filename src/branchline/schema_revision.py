"""The store's schema revision, in a module of its own so the SDK can check it without SQLAlchemy."""

from __future__ import annotations

__all__ = ["SCHEMA_REVISION"]

#: The Alembic revision this branchline reads and writes; the store refuses any other.
SCHEMA_REVISION = "0007_wandb_artifact_uploads"
