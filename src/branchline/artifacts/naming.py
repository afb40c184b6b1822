"""Validating artifact names, types and aliases, and parsing `entity/project/name:alias` paths."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from branchline.errors import UsageError

__all__ = ["ArtifactPath", "parse_artifact_path", "validate_aliases", "validate_name", "validate_type"]

_NAME = re.compile(r"^[A-Za-z0-9_\-.]+$")
_VERSION = re.compile(r"^v\d+$")
_MAX = 128


def validate_name(name: object) -> str:
    """Names match `^[A-Za-z0-9_\\-.]+$` and have at most 128 characters (wandb's rule)."""
    if not isinstance(name, str) or not name:
        raise UsageError("An artifact name must be a non-empty string.")
    if len(name) > _MAX:
        raise UsageError(f"Artifact name {name[:20]!r}... is {len(name)} characters long; the limit is {_MAX}.")
    if not _NAME.match(name):
        raise UsageError(
            f"Invalid artifact name {name!r}: use only letters, digits, '-', '_' and '.' "
            "(the version or alias goes after a ':' only when referring to a logged artifact)."
        )
    return name


def validate_type(type: object) -> str:
    """Types are non-empty, at most 128 characters, without '/' or ':'."""
    if not isinstance(type, str) or not type:
        raise UsageError("An artifact type must be a non-empty string, such as 'dataset' or 'model'.")
    if len(type) > _MAX:
        raise UsageError(f"Artifact type {type[:20]!r}... is {len(type)} characters long; the limit is {_MAX}.")
    bad = sorted(set(type) & {"/", ":"})
    if bad:
        raise UsageError(f"Invalid artifact type {type!r}: it cannot contain {' or '.join(map(repr, bad))}.")
    return type


def validate_aliases(aliases: Iterable[object] | str | None) -> list[str]:
    """Aliases are non-empty strings without '/' or ':'; `vN` is refused since it names a version."""
    if aliases is None:
        return []
    if isinstance(aliases, str):
        aliases = [aliases]
    out: list[str] = []
    for alias in aliases:
        if not isinstance(alias, str) or not alias:
            raise UsageError(f"Invalid artifact alias {alias!r}: aliases are non-empty strings.")
        if len(alias) > _MAX:
            raise UsageError(f"Artifact alias {alias[:20]!r}... is too long; the limit is {_MAX} characters.")
        bad = sorted(set(alias) & {"/", ":"})
        if bad:
            raise UsageError(f"Invalid artifact alias {alias!r}: it cannot contain {' or '.join(map(repr, bad))}.")
        if _VERSION.match(alias):
            raise UsageError(f"Invalid artifact alias {alias!r}: 'v<number>' names a version, not an alias.")
        if alias not in out:
            out.append(alias)
    return out


@dataclass(frozen=True)
class ArtifactPath:
    """A parsed artifact reference; `entity`/`project` are None when not given."""

    entity: str | None
    project: str | None
    name: str
    spec: str  # "vN" or an alias; "latest" when omitted


def parse_artifact_path(text: object) -> ArtifactPath:
    """Parse `name[:alias|:vN]`, `project/name[:…]` or `entity/project/name[:…]`."""
    if not isinstance(text, str) or not text:
        raise UsageError("An artifact reference is a string like 'name:latest' or 'entity/project/name:v3'.")
    parts = text.split("/")
    if len(parts) > 3 or any(not p for p in parts):
        raise UsageError(
            f"Invalid artifact reference {text!r}: use 'name:alias', 'project/name:alias' or "
            "'entity/project/name:alias'."
        )
    last = parts[-1]
    name, sep, spec = last.partition(":")
    if sep and not spec:
        raise UsageError(f"Invalid artifact reference {text!r}: nothing follows ':'.")
    if ":" in spec:
        raise UsageError(f"Invalid artifact reference {text!r}: more than one ':'.")
    validate_name(name)
    entity = parts[0] if len(parts) == 3 else None
    project = parts[-2] if len(parts) >= 2 else None
    return ArtifactPath(entity=entity, project=project, name=name, spec=spec or "latest")
