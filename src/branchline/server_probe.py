"""Whether a server URL is a branchline server: asked of WANDB_BASE_URL before it is used.

WANDB_BASE_URL is often left set for W&B itself; both `init` and `Api` use it only when it
answers as a branchline server (GET /api/v1/health), and never ask W&B's own hosts.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["PROBE_SECONDS", "why_not_branchline"]

#: How long a server named by WANDB_BASE_URL has to say it is branchline.
PROBE_SECONDS = 2.0
#: Hosts that are W&B's own: never asked.
_WANDB_HOSTS = ("wandb.ai", "wandb.io", "coreweave.com")


def _is_wandb_host(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return any(host == domain or host.endswith("." + domain) for domain in _WANDB_HOSTS)


def why_not_branchline(url: str) -> str | None:
    """None when `url` answers as a branchline server, else what it is instead."""
    if _is_wandb_host(url):
        return "is a W&B server"
    import httpx  # only when WANDB_BASE_URL is set: nothing else pays for it

    try:
        response = httpx.get(url.rstrip("/") + "/api/v1/health", timeout=PROBE_SECONDS)
        body = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as exc:
        return f"could not be asked whether it is a branchline server ({type(exc).__name__})"
    if isinstance(body, dict) and {"ok", "version", "read_only"} <= body.keys():
        return None
    return f"is not a branchline server (GET /api/v1/health answered {response.status_code})"
