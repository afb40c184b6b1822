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


def server_error(base_url: str, status: int, body: object, reason: str, not_found: type[Error]) -> Error:
    """The error for a server's HTTP error answer (its JSON shape is `{"error": {"code", "message"}}`).

    `not_found` is the caller's error for 404 (a run, an artifact...).
    """
    error = body.get("error") if isinstance(body, dict) else None
    message = str((error or {}).get("message") or reason) if isinstance(error, dict) or error is None else reason
    if status == 401:
        return AuthenticationError(f"{base_url} did not accept the API key: {message}")
    if status == 403:
        return AuthenticationError(f"{base_url} refused the request: {message}")
    if status == 404:
        return not_found(message)
    if status in (400, 409, 413, 422):
        return UsageError(message)
    return CommError(f"{base_url} answered HTTP {status}: {message}")
