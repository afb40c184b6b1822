"""Who is calling, and what they may do: API keys → principal, and the read/write rules.

Rules (DESIGN.md "Server"):
- with auth required, `Authorization: Bearer <key>` (or wandb's `Basic api:<key>`) names a user;
  a missing header makes the caller anonymous; a malformed, unknown or revoked key is a 401;
- members of an entity (the user's own name, or a team they belong to) read and write its projects;
- a public project is readable by anyone, anonymous callers included, and writable by members only;
- a private run (`private` on the run) is readable by its entity's members only, even in a public
  project: to anyone else it is a 404 and it is left out of lists and counts;
- with auth off (`branchline ui` and a loopback `branchline server` without users) the caller is
  the local single user, who may do anything a read-only server allows.

Denials: anonymous callers get 401 (send a key), authenticated non-members 403. Neither depends on
whether the project exists, so the answers reveal nothing about other teams' projects.

The web app logs in with `POST /api/v1/session`, which puts the API key itself in an HttpOnly,
SameSite=Strict cookie: plain links (downloads, image previews) then carry it too, and revoking the
key ends the session at once with no server-side state. The Authorization header wins over the
cookie. A state-changing request that relies on the cookie must also send `X-Branchline-Client`
(a header no cross-site form or link can set), so it cannot be forged from another site.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from branchline.server.errors import ApiError, ApiJSONResponse
from branchline.server.models import Ok
from branchline.store import Store
from branchline.store.interface import RunCatalog

__all__ = [
    "ANONYMOUS_NAME",
    "CLIENT_HEADER",
    "SESSION_COOKIE",
    "AuthPrincipalDep",
    "Principal",
    "Viewer",
    "auth_required",
    "can_read",
    "can_write",
    "check_access",
    "check_incarnation_visible",
    "check_run_visible",
    "get_principal",
    "principal_from_header",
    "principal_from_key",
    "private_runs_of",
    "router",
    "sees_private_runs",
    "visible_runs_filter",
]

ANONYMOUS_NAME = "anonymous"
LOCAL_NAME = "local"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="branchline"'}
#: The web app's session cookie: it holds the API key (HttpOnly, SameSite=Strict).
SESSION_COOKIE = "branchline_session"
#: Sent by the web app on every request; required when the cookie alone authenticates a change.
CLIENT_HEADER = "X-Branchline-Client"
#: How long a browser keeps the session: the key itself does not expire, so this only bounds idle tabs.
SESSION_MAX_AGE = 30 * 24 * 3600
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SESSION_ENDED = {"WWW-Authenticate": 'Bearer realm="branchline", error="invalid_token"'}


@dataclass(frozen=True)
class Principal:
    """The caller. `name` and `can_write` keep the shape the read routes already use.

    `can_write` is False only on a read-only server; who may write *where* is `can_write()`.
    `is_public` looks a project's visibility up lazily: most requests never need it.
    """

    name: str
    can_write: bool = True
    username: str | None = None
    entities: frozenset[str] = frozenset()
    local: bool = False
    admin: bool = False
    is_public: Callable[[str, str], bool] | None = field(default=None, compare=False, repr=False)

    @property
    def anonymous(self) -> bool:
        return self.username is None and not self.local


def can_read(principal: Principal, entity: str, project: str, *, public: bool | None = None) -> bool:
    """Members and the local user read everything of theirs; anyone reads a public project."""
    if principal.local or entity in principal.entities:
        return True
    if public is None:
        public = principal.is_public(entity, project) if principal.is_public is not None else False
    return bool(public)


def can_write(principal: Principal, entity: str, project: str) -> bool:
    """Only members (or the local user) write, and nobody on a read-only server."""
    if not principal.can_write:
        return False
    return principal.local or entity in principal.entities


def sees_private_runs(principal: Principal, entity: str) -> bool:
    """A private run is readable by the members of its entity (and the local user) only."""
    return principal.local or entity in principal.entities


def private_runs_of(principal: Principal) -> frozenset[str] | None:
    """`sees_private_runs` as a set for store queries: the entities whose private runs `principal`
    sees, or None for every entity's (the local user)."""
    return None if principal.local else principal.entities


def check_run_visible(principal: Principal, entity: str, private: bool, what: str) -> None:
    """A private run is a 404 to anyone else, as if it did not exist: its existence is not revealed."""
    if private and not sees_private_runs(principal, entity):
        raise ApiError(404, f"{what} not found.", code="run_not_found")


def check_incarnation_visible(store: RunCatalog, principal: Principal, entity: str, incarnation_id: str) -> None:
    """`check_run_visible` for an incarnation id (one lookup, only for callers outside the entity)."""
    if sees_private_runs(principal, entity):
        return
    view = store.get_incarnation(incarnation_id)
    check_run_visible(principal, entity, view is not None and view.private, f"Incarnation {incarnation_id!r}")


def visible_runs_filter(principal: Principal, entity: str, filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """`filters`, narrowed to the runs `principal` may see: private runs are left out for non-members."""
    if sees_private_runs(principal, entity):
        return filters
    public_only: dict[str, Any] = {"private": {"$ne": True}}
    return public_only if not filters else {"$and": [filters, public_only]}


def check_access(principal: Principal, entity: str, project: str, *, write: bool = False) -> None:
    """Raise the API error that refuses `principal` reading (or writing) `entity/project`, if any."""
    if write and not principal.can_write:
        raise ApiError(403, "This server is read-only: runs cannot be changed here.", code="read_only")
    if (can_write if write else can_read)(principal, entity, project):
        return
    if principal.anonymous:
        what = "change" if write else "read"
        raise ApiError(
            401,
            f"An API key is needed to {what} {entity}/{project}: send `Authorization: Bearer <key>` "
            "(`branchline login` stores one for the SDK and CLI).",
            code="unauthorized",
        )
    if write:
        raise ApiError(
            403,
            f"User {principal.username!r} may not change {entity}/{project}: only members of {entity!r} can.",
            code="forbidden",
        )
    raise ApiError(
        403,
        f"User {principal.username!r} may not read {entity}/{project}: it is private to the members of {entity!r}.",
        code="forbidden",
    )


def auth_required(request: Request) -> bool:
    """Whether this app checks API keys (set by the app factory from the server's settings)."""
    settings = getattr(request.app.state, "settings", None)
    return bool(getattr(request.app.state, "auth_required", getattr(settings, "auth_required", False)))


def _read_only(request: Request) -> bool:
    settings = getattr(request.app.state, "settings", None)
    return bool(getattr(settings, "read_only", False))


def _key_from_header(header: str) -> str | None:
    """The API key in an Authorization header: `Bearer <key>` or `Basic base64(api:<key>)`."""
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, sep, key = decoded.partition(":")
        return key if sep and key else None
    return None


def principal_from_key(store: Store, key: str | None, *, required: bool, read_only: bool = False) -> Principal:
    """The principal for an API key (None: no key sent). Blocking: call it off the event loop."""

    def is_public(entity: str, project: str) -> bool:
        return store.project_is_public(entity, project)

    if not required:
        return Principal(name=LOCAL_NAME, can_write=not read_only, local=True, is_public=is_public)
    if key is None:
        return Principal(name=ANONYMOUS_NAME, can_write=not read_only, is_public=is_public)
    user = store.authenticate(key) if key else None
    if user is None:
        # Never echo the key: the message and the logs stay free of secrets.
        raise ApiError(
            401,
            "The API key was not accepted: it is malformed, unknown or revoked. "
            "Create a new one with `branchline keys create <user>`.",
            code="unauthorized",
        )
    return Principal(
        name=user.username,
        can_write=not read_only,
        username=user.username,
        entities=user.entities,
        admin=user.admin,
        is_public=is_public,
    )


def principal_from_header(store: Store, header: str | None, *, required: bool, read_only: bool = False) -> Principal:
    """The principal for an Authorization header value (blocking: call it off the event loop)."""
    if not required or not header:
        return principal_from_key(store, None, required=required, read_only=read_only)
    # A header that names no key is as bad as a wrong key: "" makes principal_from_key refuse it.
    return principal_from_key(store, _key_from_header(header) or "", required=True, read_only=read_only)


def _require_client_header(request: Request) -> None:
    """Refuse a state-changing browser request that lacks the web app's header (CSRF guard)."""
    if request.method in _SAFE_METHODS or request.headers.get(CLIENT_HEADER, "").strip():
        return
    raise ApiError(
        403,
        f"This request is authenticated by the session cookie, so it must also send the header "
        f"`{CLIENT_HEADER}: web` (or use `Authorization` instead): this guards against cross-site request forgery.",
        code="csrf_rejected",
    )


def _clear_cookie_header(request: Request) -> str:
    """The Set-Cookie value that deletes the session cookie."""
    scratch = Response()
    _delete_session_cookie(scratch, request)
    return scratch.headers["set-cookie"]


def _delete_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=request.url.scheme == "https", httponly=True, samesite="strict"
    )


async def get_principal(request: Request) -> Principal:
    """FastAPI dependency: the calling principal (401 for a bad key; anonymous without one).

    The Authorization header wins; without it the session cookie (web app) names the key.
    """
    cached: Principal | None = getattr(request.state, "branchline_principal", None)
    if cached is not None:
        return cached
    store: Store | None = getattr(request.app.state, "store", None)
    if store is None:
        raise ApiError(503, "The store is not open: the app's lifespan has not started.", code="unavailable")
    header = request.headers.get("authorization")
    required = auth_required(request)
    read_only = _read_only(request)
    if not required:
        principal = principal_from_header(store, header, required=False, read_only=read_only)
    elif header or SESSION_COOKIE not in request.cookies:
        principal = await run_in_threadpool(principal_from_header, store, header, required=True, read_only=read_only)
    else:
        _require_client_header(request)
        cookie = request.cookies[SESSION_COOKIE]
        try:
            principal = await run_in_threadpool(principal_from_key, store, cookie, required=True, read_only=read_only)
        except ApiError as exc:
            # A revoked (or otherwise stale) session: say so, and drop the cookie so the next request
            # is simply anonymous rather than refused again. RFC 6750's `invalid_token` tells the web
            # app this 401 is an ended session, not a page that needs a login.
            raise StarletteHTTPException(
                401,
                "Your session has ended: its API key is no longer accepted (revoked or unknown). Log in again.",
                headers={"Set-Cookie": _clear_cookie_header(request), **_SESSION_ENDED},
            ) from exc
    request.state.branchline_principal = principal
    return principal


AuthPrincipalDep = Annotated[Principal, Depends(get_principal)]

router = APIRouter(prefix="/api/v1", tags=["auth"])


class Viewer(BaseModel):
    """Who the server thinks the caller is."""

    username: str | None = Field(description="The key's user; null for anonymous callers and the local user.")
    entities: list[str] = Field(description="Entities the caller is a member of (own name and teams).")
    default_entity: str | None = Field(description="Where runs go when `entity` is not set: the user's own name.")
    auth_required: bool = Field(description="Whether this server checks API keys.")
    admin: bool = False


class SessionRequest(BaseModel):
    """`POST /session`: the API key to log in with."""

    model_config = ConfigDict(extra="forbid")
    api_key: str = Field(min_length=1, max_length=512, description="An API key (`branchline keys create <user>`).")


def _viewer_body(request: Request, principal: Principal) -> dict[str, Any]:
    return {
        "username": principal.username,
        "entities": sorted(principal.entities),
        "default_entity": principal.username,
        "auth_required": auth_required(request),
        "admin": principal.admin,
    }


@router.get(
    "/viewer",
    response_model=Viewer,
    summary="The calling user (checks an API key; `branchline login` uses it)",
    responses={401: {"description": "The API key was not accepted."}},
)
async def viewer(request: Request, principal: AuthPrincipalDep) -> dict[str, Any]:
    return _viewer_body(request, principal)


@router.post(
    "/session",
    response_model=Viewer,
    summary="Log the web app in: check an API key and keep it in an HttpOnly session cookie",
    description=(
        f"Needs the header `{CLIENT_HEADER}` (login is a state change too). With auth off "
        "(`branchline ui`) there is nothing to log in to: the local viewer is answered and no cookie is set."
    ),
    responses={
        401: {"description": "The API key was not accepted."},
        403: {"description": f"The `{CLIENT_HEADER}` header is missing."},
    },
)
async def create_session(request: Request, body: SessionRequest) -> Response:
    _require_client_header(request)
    store: Store | None = getattr(request.app.state, "store", None)
    if store is None:
        raise ApiError(503, "The store is not open: the app's lifespan has not started.", code="unavailable")
    required, read_only = auth_required(request), _read_only(request)
    key = body.api_key.strip()
    principal = await run_in_threadpool(principal_from_key, store, key, required=required, read_only=read_only)
    response = ApiJSONResponse(_viewer_body(request, principal))
    if required:
        response.set_cookie(
            SESSION_COOKIE,
            key,
            max_age=SESSION_MAX_AGE,
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
    return response


@router.delete(
    "/session",
    response_model=Ok,
    summary="Log the web app out: delete the session cookie (the API key stays valid)",
)
async def delete_session(request: Request) -> Response:
    # No CSRF check: logging out needs no credentials and harms nothing.
    response = ApiJSONResponse({"ok": True})
    _delete_session_cookie(response, request)
    return response
