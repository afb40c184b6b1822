"""Artifact errors; all are `branchline.Error`s."""

from __future__ import annotations

from branchline.errors import Error, UsageError

__all__ = [
    "ArtifactError",
    "ArtifactFinalizedError",
    "ArtifactIntegrityError",
    "ArtifactNotFoundError",
    "ArtifactNotLoggedError",
    "changed_after_add",
]


class ArtifactError(Error):
    """Base class of artifact errors."""


class ArtifactNotFoundError(ArtifactError, ValueError):
    """No artifact version matches the name, alias or version asked for."""


class ArtifactNotLoggedError(ArtifactError, UsageError):
    """The operation needs a logged artifact, and this one is still a draft."""


class ArtifactFinalizedError(ArtifactError, UsageError):
    """A logged artifact's contents cannot change; make a new Artifact instead."""


class ArtifactIntegrityError(ArtifactError, ValueError):
    """Stored or downloaded content does not match its digest; `problems` names each one."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


def changed_after_add(path: str, digest: str, actual: str | None) -> ArtifactIntegrityError:
    """The error for a file whose content is no longer what was hashed when it was added."""
    now = "it no longer exists" if actual is None else f"its sha256 is now {actual}"
    return ArtifactIntegrityError(
        f"{path} changed after it was added to the artifact ({now}, was {digest}); add it again.", [path]
    )
