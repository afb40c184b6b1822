"""The exception tree. Every error branchline raises on purpose is a `branchline.Error`."""

from __future__ import annotations

__all__ = [
    "Error",
    "UsageError",
    "ConfigError",
    "CommError",
    "AuthenticationError",
    "RunNotFoundError",
    "SchemaError",
    "StoreError",
]


class Error(Exception):
    """Base class of every branchline error."""


class UsageError(Error):
    """An API was called the wrong way; the message says what to change."""


class ConfigError(Error):
    """A config key was changed without `allow_val_change=True`."""


class CommError(Error):
    """The server could not be reached or answered with an error."""


class AuthenticationError(CommError):
    """The server refused the API key (missing, wrong or revoked)."""


class RunNotFoundError(Error, ValueError):
    """No run exists at the given path."""


class StoreError(Error):
    """The store could not complete an operation."""


class SchemaError(StoreError):
    """The store's schema is older or newer than this version of branchline understands."""
