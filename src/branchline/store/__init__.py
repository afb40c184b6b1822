"""Persistence behind one interface: `open_store(url)` over SQLite or PostgreSQL."""

from branchline.store.reads import RunView
from branchline.store.store import DEFAULT_CRASH_TIMEOUT, Store, open_store

__all__ = ["Store", "RunView", "open_store", "DEFAULT_CRASH_TIMEOUT"]
