"""What the public API needs from where runs live, and opening it from settings.

The interface is declared once, with the store's (store/interface.py): `Backend` is its
`ApiBackend` role. `Store` implements it, so the local backend is the store itself; a server
backend (HTTP to /api/v1/store, api/remote.py) implements the same role and `Api` picks one
from settings.
"""

from __future__ import annotations

import warnings

from branchline.errors import UsageError
from branchline.settings import Settings
from branchline.store.engine import sqlite_file
from branchline.store.interface import ApiBackend as Backend
from branchline.store.interface import SeriesReader as SeriesSource

__all__ = ["Backend", "SeriesSource", "open_backend"]


def open_backend(settings: Settings) -> Backend:
    """The backend the settings point at: a server (`base_url`) or a store (`store_url` / the local file)."""
    if settings.x_base_url_env and settings.base_url and not settings.store_url:
        from branchline.server_probe import why_not_branchline

        reason = why_not_branchline(settings.base_url)
        if reason is not None:  # WANDB_BASE_URL left for W&B: read the local store, as init writes it
            warnings.warn(f"WANDB_BASE_URL={settings.base_url} {reason}; reading the local store.", stacklevel=3)
            settings.base_url = None
    if settings.base_url and not settings.store_url:
        from branchline.api.remote import RemoteBackend

        remote = RemoteBackend(settings.base_url, settings.api_key)
        if settings.entity is None:
            # As in wandb: without an entity, paths are read in the key owner's own entity.
            settings.entity = remote.default_entity()
        return remote
    from branchline.inflight import wait_until_stored
    from branchline.store.store import open_store

    url = settings.resolved_store_url
    path = sqlite_file(url)
    # The first run of this process in a new directory may still be creating the store (its writer
    # does that); otherwise reading must not leave an empty store behind wherever the script ran.
    if path is not None and not path.exists() and not (wait_until_stored() and path.exists()):
        raise UsageError(
            f"No branchline store at {path}: no runs were logged with dir={path.parent.parent}. "
            "Point at the right one with Api(overrides={'root_dir': ...} or {'store_url': ...}), "
            "BRANCHLINE_DIR or BRANCHLINE_STORE."
        )
    return open_store(
        url, create=path is None, crash_timeout=settings.x_crash_timeout, files_dir=settings.branchline_dir / "files"
    )
