"""The W&B backend protocol: the unmodified `wandb` client logs into branchline.

`POST /graphql` (routes.py, operations.py, buckets.py), `POST /files/…/file_stream`
(filestream.py) and signed file URLs (files.py, signing.py). What the client sends is stored as
our SDK's journal records are, so the web app, `Api`, fork and rewind cannot tell the two apart.
"""

from __future__ import annotations

from fastapi import APIRouter

from branchline.server.wandb import artifact_files, files, filestream, routes

__all__ = ["LOCAL_API_KEY", "client_env", "router"]

#: The key to give the wandb client where the server checks none (`branchline ui`): any key of the
#: client's own shape (an optional `prefix-`, then 40 or more of [A-Za-z0-9_]) is accepted there.
LOCAL_API_KEY = "local-" + "0" * 40

router = APIRouter()
router.include_router(routes.router)
router.include_router(filestream.router)
router.include_router(files.router)
router.include_router(artifact_files.router)


def client_env(url: str, *, auth_required: bool) -> list[str]:
    """The environment variables that point the unmodified wandb client at this server."""
    key = "<an API key: branchline keys create <user>>" if auth_required else LOCAL_API_KEY
    return [f"WANDB_BASE_URL={url}", f"WANDB_API_KEY={key}"]
