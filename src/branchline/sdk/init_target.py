"""Where a run goes when only wandb's WANDB_BASE_URL names a server.

WANDB_BASE_URL is often left set for W&B itself. It is used only when nothing named BRANCHLINE_*
chose otherwise (settings.py drops it then) and when it answers as a branchline server; anything
else (W&B's cloud, another service, nothing listening) sends the run to the embedded store, with
one line that says so and which variable to set. BRANCHLINE_BASE_URL is never second-guessed.
"""

from __future__ import annotations

from branchline.sdk.terminal import Terminal
from branchline.server_probe import why_not_branchline
from branchline.settings import Settings

__all__ = ["check_wandb_base_url"]


def check_wandb_base_url(settings: Settings, terminal: Terminal) -> None:
    """Drop a WANDB_BASE_URL that is not a branchline server, saying where the run goes instead."""
    url = settings.base_url
    if settings.x_base_url_env is None or not url or settings.mode != "online":
        return
    reason = why_not_branchline(url)
    if reason is None:
        return
    settings.base_url = settings.x_base_url_env = None
    terminal.warn(
        f"WANDB_BASE_URL={url} {reason}; this run is stored in the embedded store "
        f"({settings.resolved_store_url}). To log to a branchline server set BRANCHLINE_BASE_URL "
        "(it wins over WANDB_BASE_URL); unset WANDB_BASE_URL to silence this."
    )
