"""Runs this process has started that their writers are still creating in the store (fast starts).

The SDK registers how to wait for them; a reader in the same process (the public `Api`) calls
`wait_until_stored` before a lookup, so a run read right after `init()` is found. This module sits
below both, so neither imports the other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Waiter", "register", "wait_until_stored"]

#: Waits up to the given number of seconds; returns whether there was anything to wait for.
Waiter = Callable[[float], bool]

_lock = threading.Lock()
_waiters: list[Waiter] = []


def register(waiter: Waiter) -> None:
    """Add a waiter (once); the SDK registers one when it is first imported."""
    with _lock:
        if waiter not in _waiters:
            _waiters.append(waiter)


def wait_until_stored(timeout: float = 30.0) -> bool:
    """Wait for this process's runs still being created; returns whether there were any.

    Without a registered waiter the SDK was never imported, so this process started no run.
    """
    with _lock:
        waiters = list(_waiters)
    deadline = time.monotonic() + timeout
    waited = False
    for waiter in waiters:
        waited = waiter(max(0.0, deadline - time.monotonic())) or waited
    return waited
