"""Request bodies of `/api/v1/artifacts`: manifests, aliases and edits, checked by the SDK's own rules."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from branchline.artifacts.backend import LOGGED
from branchline.artifacts.naming import validate_aliases, validate_name, validate_type
from branchline.errors import UsageError
from branchline.server.guards import SafeText, entry_path, text_problem

__all__ = ["AliasesBody", "CommitBody", "DigestList", "EntryBody", "JsonObject", "UseBody", "VersionEdit"]

_MAX_MISSING = 100_000
Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
_HEX = re.compile(r"[0-9a-f]{64}")
Short = Annotated[str, StringConstraints(min_length=1, max_length=128)]


def _storable(value: Any, where: str = "") -> Any:
    """Free-form JSON is stored and sent back as UTF-8: a lone surrogate (valid in JSON's \\u escapes,
    not in UTF-8) is refused here with its place named, instead of failing after the commit."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where or 'a value'} is not valid Unicode (a lone surrogate)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key, f"the key {where}.{key!r}" if where else f"the key {key!r}")
            _storable(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _storable(item, f"{where}[{index}]")
    return value


#: A JSON object the store can keep: any shape, valid Unicode throughout.
JsonObject = Annotated[dict[str, Any], AfterValidator(_storable)]


class DigestList(BaseModel):
    """`POST .../blobs/missing`: the digests to check."""

    model_config = ConfigDict(extra="forbid")
    digests: Annotated[list[Hex], Field(max_length=_MAX_MISSING)]


class EntryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Downloads write entries under one root: a path leaving it is refused before it is stored.
    path: Annotated[str, StringConstraints(max_length=1024), AfterValidator(entry_path)]
    digest: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    size: int | None = None
    ref: Annotated[SafeText, StringConstraints(max_length=4096)] | None = None
    extra: JsonObject | None = None

    @model_validator(mode="after")
    def _stored_entries_name_a_blob(self) -> EntryBody:
        # A stored entry's digest names its blob (a file path on the server): only sha256 hex.
        if self.ref is None and not _HEX.fullmatch(self.digest):
            raise ValueError(f"entry {self.path!r}: digest must be the file's sha256 as 64 lowercase hex characters")
        problem = text_problem(self.digest)
        if problem is not None:  # a reference's digest is stored as text
            raise ValueError(f"entry {self.path!r}: the digest {problem}")
        return self


def _sdk_rule(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """An SDK validator (which raises UsageError) as a pydantic one: the same rule, the same words."""

    def validate(value: Any) -> Any:
        try:
            return check(value)
        except UsageError as exc:
            raise ValueError(str(exc)) from None

    return validate


ArtifactName = Annotated[str, AfterValidator(_sdk_rule(validate_name))]
ArtifactType = Annotated[str, AfterValidator(_sdk_rule(validate_type))]
ArtifactAlias = Annotated[str, AfterValidator(_sdk_rule(lambda alias: validate_aliases([alias])[0]))]


class CommitBody(BaseModel):
    """`POST .../commit`: a version's manifest, aliases and the incarnation that logged or used it."""

    model_config = ConfigDict(extra="forbid")
    name: ArtifactName
    type: ArtifactType
    digest: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    entries: Annotated[list[EntryBody], Field(max_length=10_000_000)]
    description: Annotated[str, StringConstraints(max_length=1_000_000)] | None = None
    metadata: JsonObject = Field(default_factory=dict)
    aliases: Annotated[list[ArtifactAlias], Field(max_length=1000)] = Field(default_factory=list)
    incarnation_id: Annotated[str, StringConstraints(max_length=32)] | None = None
    role: Annotated[str, StringConstraints(pattern=r"^(logged|used)$")] = LOGGED


class UseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    incarnation_id: Annotated[str, StringConstraints(min_length=1, max_length=32)]


class AliasesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    aliases: Annotated[list[ArtifactAlias], Field(max_length=1000)]


class VersionEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: Annotated[str, StringConstraints(max_length=1_000_000)] | None = None
    metadata: JsonObject = Field(default_factory=dict)
