"""Signed, expiring URLs for run files: the wandb client uploads and downloads without credentials.

The client sends no Authorization header to the URLs we hand it (they may point at any object
store), so the URL itself carries the capability: what it allows (method, incarnation, path),
until when, and an HMAC-SHA256 over those with the server's secret. Every replica must share the
secret (`BRANCHLINE_SERVER_SECRET`); without it each process draws its own, which is right for a
single server and `branchline ui`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["SECRET_ENV", "Grant", "Signer", "signer_for"]

SECRET_ENV = "BRANCHLINE_SERVER_SECRET"
#: How long a signed URL stays valid: uploads start at once, but a large file may queue behind others.
DEFAULT_TTL = 24 * 3600.0
_GUARD = threading.Lock()


@dataclass(frozen=True)
class Grant:
    """What a signed URL allows."""

    method: str
    incarnation_id: str
    path: str
    expires: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Mints and checks tokens `<payload>.<mac>` (both base64url)."""

    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(b"branchline-file-url\0" + secret).digest()

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def sign(self, method: str, incarnation_id: str, path: str, *, ttl: float = DEFAULT_TTL) -> str:
        body = json.dumps([method, incarnation_id, path, int(time.time() + ttl)], separators=(",", ":"))
        payload = _b64(body.encode("utf-8"))
        return f"{payload}.{self._mac(payload)}"

    def verify(self, token: str, method: str) -> Grant | None:
        """The grant of a genuine, unexpired token for `method`, else None."""
        payload, sep, mac = token.partition(".")
        if not sep or not hmac.compare_digest(self._mac(payload), mac):
            return None
        try:
            fields: Any = json.loads(_unb64(payload))
            granted, incarnation_id, path, expires = fields
        except (ValueError, TypeError):
            return None
        if granted != method or float(expires) < time.time():
            return None
        return Grant(str(granted), str(incarnation_id), str(path), float(expires))


def signer_for(app: Any) -> Signer:
    """The app's signer: from `BRANCHLINE_SERVER_SECRET`, else a secret drawn once per app."""
    with _GUARD:
        found: Signer | None = getattr(app.state, "wandb_signer", None)
        if found is None:
            env = os.environ.get(SECRET_ENV, "")
            found = Signer(env.encode("utf-8") if env else secrets.token_bytes(32))
            app.state.wandb_signer = found
    return found
