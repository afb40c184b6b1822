"""Whether a process of this machine is still alive: one rule for every layer that leaves
something behind per process (writer liveness, staging and temporary upload directories)."""

from __future__ import annotations

import os

__all__ = ["pid_alive"]


def pid_alive(pid: int | None) -> bool:
    """True while `pid` names a live process on this machine (one we may not signal counts too)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
