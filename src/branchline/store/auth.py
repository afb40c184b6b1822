"""Users, API keys, teams and project visibility: the store side of the server's auth.

An *entity* (the first part of `entity/project/run_id`) is either a user's own name or a team's;
both live in one namespace. A user may read and write the runs of their own entity and of the
teams they belong to; anyone may read a public project.

API keys look like `bl_<12-char id><32-char secret>` (letters and digits). Only a salted sha256 of the whole key is
stored, found by the id; the key itself is shown once, when it is created. A slow password hash
buys nothing here: keys carry ~190 bits of randomness, so a leaked digest cannot be brute-forced.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy import Connection, and_, select, update

from branchline.errors import UsageError
from branchline.store.schema import (
    api_keys,
    incarnations,
    projects,
    runs,
    team_members,
    teams,
    users,
    writer_sessions,
)

__all__ = [
    "KEY_PREFIX",
    "AuthStoreMixin",
    "AuthUser",
    "KeyRow",
    "TeamRow",
    "UserRow",
    "add_member",
    "authenticate",
    "create_key",
    "create_team",
    "create_user",
    "incarnation_owner",
    "key_id_of",
    "list_keys",
    "list_teams",
    "list_users",
    "project_is_public",
    "remove_member",
    "revoke_key",
    "session_owner",
    "set_project_public",
    "user_count",
]

KEY_PREFIX = "bl_"
_KEY_ID_LEN = 12
_SECRET_LEN = 32
_KEY_LEN = len(KEY_PREFIX) + _KEY_ID_LEN + _SECRET_LEN
#: Letters and digits only (no `-`): the wandb client accepts a key only as an optional `prefix-`
#: then 40 or more of [A-Za-z0-9_]. Keys minted before this change may hold `-` or `_`; they still work.
_SECRET_ALPHABET = string.ascii_letters + string.digits
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ROLES = ("admin", "member")
#: last_used_at is a hint for admins, not an audit log: refresh it at most this often per key,
#: so authenticating a stream of ingest requests is one read, not a write each.
_LAST_USED_RESOLUTION = 60.0


@dataclass(frozen=True)
class AuthUser:
    """Who an API key belongs to and which entities they are a member of."""

    user_id: int
    username: str
    entities: frozenset[str]
    admin: bool
    key_id: str


@dataclass(frozen=True)
class UserRow:
    id: int
    username: str
    email: str
    admin: bool
    disabled: bool
    created_at: float
    teams: tuple[str, ...]


@dataclass(frozen=True)
class KeyRow:
    id: str
    username: str
    name: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


@dataclass(frozen=True)
class TeamRow:
    id: int
    name: str
    created_at: float
    members: tuple[tuple[str, str], ...]  # (username, role)


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise UsageError(
            f"{what} name {name!r} is not valid: use 1-64 letters, digits, '-', '_' or '.', "
            "starting with a letter or digit."
        )
    return name


def _hash(salt: str, key: str) -> str:
    return hashlib.sha256(salt.encode() + b"\0" + key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    """The public id inside a key, or None if `key` does not have a key's shape."""
    if len(key) != _KEY_LEN or not key.startswith(KEY_PREFIX):
        return None
    return key[len(KEY_PREFIX) : len(KEY_PREFIX) + _KEY_ID_LEN]


def _entity_taken(conn: Connection, name: str) -> bool:
    lowered = name.lower()
    # Case-insensitively: "Alice" and "alice" would be two entities that read as one.
    for table, column in ((users, users.c.username), (teams, teams.c.name)):
        for (existing,) in conn.execute(select(column).select_from(table)):
            if str(existing).lower() == lowered:
                return True
    return False


def _user_id(conn: Connection, username: str) -> int:
    found = conn.execute(select(users.c.id).where(users.c.username == username)).scalar()
    if found is None:
        raise UsageError(f"No user {username!r}; create it with `branchline users create {username}`.")
    return int(found)


def _team_id(conn: Connection, name: str) -> int:
    found = conn.execute(select(teams.c.id).where(teams.c.name == name)).scalar()
    if found is None:
        raise UsageError(f"No team {name!r}; create it with `branchline teams create {name}`.")
    return int(found)


def _teams_of(conn: Connection, user_id: int) -> list[str]:
    return [
        str(name)
        for (name,) in conn.execute(
            select(teams.c.name)
            .join(team_members, team_members.c.team_id == teams.c.id)
            .where(team_members.c.user_id == user_id)
            .order_by(teams.c.name)
        )
    ]


# -- users and keys ---------------------------------------------------------------------------------
def create_user(conn: Connection, username: str, *, email: str = "", admin: bool = False, now: float) -> UserRow:
    _check_name(username, "User")
    if _entity_taken(conn, username):
        raise UsageError(f"The name {username!r} is already a user or a team.")
    conn.execute(users.insert().values(username=username, email=email, admin=admin, disabled=False, created_at=now))
    return UserRow(_user_id(conn, username), username, email, admin, False, now, ())


def list_users(conn: Connection) -> list[UserRow]:
    out = []
    for row in conn.execute(select(users).order_by(users.c.username)):
        out.append(
            UserRow(
                int(row.id),
                row.username,
                row.email,
                bool(row.admin),
                bool(row.disabled),
                float(row.created_at),
                tuple(_teams_of(conn, int(row.id))),
            )
        )
    return out


def user_count(conn: Connection) -> int:
    return len(conn.execute(select(users.c.id).where(users.c.disabled.is_(False))).all())


def create_key(conn: Connection, username: str, *, name: str = "", now: float) -> tuple[KeyRow, str]:
    """A new key for `username`: its row and the key itself, which is never stored or shown again."""
    user_id = _user_id(conn, username)
    key_id = secrets.token_hex(_KEY_ID_LEN // 2)
    key = KEY_PREFIX + key_id + "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(_SECRET_LEN))
    salt = secrets.token_hex(16)
    conn.execute(
        api_keys.insert().values(
            id=key_id, user_id=user_id, name=name, salt=salt, key_hash=_hash(salt, key), created_at=now
        )
    )
    return KeyRow(key_id, username, name, now, None, None), key


def revoke_key(conn: Connection, key_id: str, *, now: float) -> bool:
    """Revoke a key by its id (or the whole key); False if there is no such live key."""
    if key_id.startswith(KEY_PREFIX):
        key_id = key_id_of(key_id) or key_id
    result = conn.execute(
        update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)).values(revoked_at=now)
    )
    return bool(result.rowcount)


def list_keys(conn: Connection, username: str | None = None) -> list[KeyRow]:
    stmt = (
        select(api_keys, users.c.username)
        .join(users, users.c.id == api_keys.c.user_id)
        .order_by(users.c.username, api_keys.c.created_at)
    )
    if username is not None:
        stmt = stmt.where(users.c.username == username)
    return [
        KeyRow(row.id, row.username, row.name, float(row.created_at), row.last_used_at, row.revoked_at)
        for row in conn.execute(stmt)
    ]


def _lookup(conn: Connection, key: str) -> tuple[AuthUser, float | None] | None:
    """The live key's user and when the key was last used; None if malformed, unknown or revoked."""
    key_id = key_id_of(key)
    if key_id is None:
        return None
    row = conn.execute(
        select(api_keys, users.c.username, users.c.admin, users.c.disabled)
        .join(users, users.c.id == api_keys.c.user_id)
        .where(api_keys.c.id == key_id)
    ).first()
    if row is None or row.revoked_at is not None or row.disabled:
        return None
    if not hmac.compare_digest(_hash(row.salt, key), row.key_hash):
        return None
    user_id = int(row.user_id)
    entities = frozenset([row.username, *_teams_of(conn, user_id)])
    return AuthUser(user_id, row.username, entities, bool(row.admin), key_id), row.last_used_at


def _last_used_due(last_used_at: float | None, now: float) -> bool:
    return last_used_at is None or now - float(last_used_at) > _LAST_USED_RESOLUTION


def authenticate(conn: Connection, key: str, *, now: float) -> AuthUser | None:
    """The user a live key belongs to (noting that the key was used), or None."""
    found = _lookup(conn, key)
    if found is None:
        return None
    user, last_used_at = found
    if _last_used_due(last_used_at, now):
        conn.execute(update(api_keys).where(api_keys.c.id == user.key_id).values(last_used_at=now))
    return user


# -- teams ------------------------------------------------------------------------------------------
def create_team(conn: Connection, name: str, *, now: float) -> TeamRow:
    _check_name(name, "Team")
    if _entity_taken(conn, name):
        raise UsageError(f"The name {name!r} is already a user or a team.")
    conn.execute(teams.insert().values(name=name, created_at=now))
    return TeamRow(_team_id(conn, name), name, now, ())


def add_member(conn: Connection, team: str, username: str, *, role: str = "member", now: float) -> None:
    if role not in _ROLES:
        raise UsageError(f"Role {role!r} is not valid; use {' or '.join(_ROLES)}.")
    team_id, user_id = _team_id(conn, team), _user_id(conn, username)
    exists = conn.execute(
        select(team_members.c.role).where(team_members.c.team_id == team_id, team_members.c.user_id == user_id)
    ).first()
    if exists is not None:
        conn.execute(
            update(team_members)
            .where(team_members.c.team_id == team_id, team_members.c.user_id == user_id)
            .values(role=role)
        )
        return
    conn.execute(team_members.insert().values(team_id=team_id, user_id=user_id, role=role, added_at=now))


def remove_member(conn: Connection, team: str, username: str) -> bool:
    team_id, user_id = _team_id(conn, team), _user_id(conn, username)
    result = conn.execute(
        team_members.delete().where(and_(team_members.c.team_id == team_id, team_members.c.user_id == user_id))
    )
    return bool(result.rowcount)


def list_teams(conn: Connection) -> list[TeamRow]:
    out = []
    for team in conn.execute(select(teams).order_by(teams.c.name)):
        members = conn.execute(
            select(users.c.username, team_members.c.role)
            .join(users, users.c.id == team_members.c.user_id)
            .where(team_members.c.team_id == team.id)
            .order_by(users.c.username)
        ).all()
        out.append(
            TeamRow(int(team.id), team.name, float(team.created_at), tuple((m.username, m.role) for m in members))
        )
    return out


# -- projects and ownership ---------------------------------------------------------------------------
def set_project_public(conn: Connection, entity: str, project: str, public: bool, *, now: float) -> None:
    """Make a project public (readable by anyone) or private, creating it if it does not exist yet."""
    from branchline.store.writes import ensure_project

    project_id = ensure_project(conn, entity, project, now)
    conn.execute(update(projects).where(projects.c.id == project_id).values(public=public))


def project_is_public(conn: Connection, entity: str, project: str) -> bool:
    found = conn.execute(
        select(projects.c.public).where(projects.c.entity == entity, projects.c.name == project)
    ).scalar()
    return bool(found)


def incarnation_owner(conn: Connection, incarnation_id: str) -> tuple[str, str] | None:
    """(entity, project) an incarnation belongs to, or None if there is no such incarnation."""
    row = conn.execute(
        select(projects.c.entity, projects.c.name, incarnations.c.detached_path)
        .select_from(incarnations)
        .outerjoin(runs, runs.c.pk == incarnations.c.run_pk)
        .outerjoin(projects, projects.c.id == runs.c.project_id)
        .where(incarnations.c.id == incarnation_id)
    ).first()
    if row is None:
        return None
    if row.entity is not None:
        return str(row.entity), str(row.name)
    # The run was deleted while forks still read this incarnation: it keeps its old path.
    parts = str(row.detached_path or "").split("/")
    return (parts[0], parts[1]) if len(parts) >= 3 else None


def session_owner(conn: Connection, session_id: str) -> tuple[str, str, str] | None:
    """(entity, project, incarnation_id) a writer session writes to, or None if unknown."""
    inc_id = conn.execute(select(writer_sessions.c.incarnation_id).where(writer_sessions.c.id == session_id)).scalar()
    if inc_id is None:
        return None
    owner = incarnation_owner(conn, str(inc_id))
    return None if owner is None else (owner[0], owner[1], str(inc_id))


class AuthStoreMixin:
    """`Store` methods for auth; each is one short transaction around the functions above."""

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def create_user(self, username: str, *, email: str = "", admin: bool = False) -> UserRow:
        with self._write() as conn:
            return create_user(conn, username, email=email, admin=admin, now=_now())

    def list_users(self) -> list[UserRow]:
        with self._read() as conn:
            return list_users(conn)

    def user_count(self) -> int:
        with self._read() as conn:
            return user_count(conn)

    def create_api_key(self, username: str, *, name: str = "") -> tuple[KeyRow, str]:
        with self._write() as conn:
            return create_key(conn, username, name=name, now=_now())

    def revoke_api_key(self, key_id: str) -> bool:
        with self._write() as conn:
            return revoke_key(conn, key_id, now=_now())

    def list_api_keys(self, username: str | None = None) -> list[KeyRow]:
        with self._read() as conn:
            return list_keys(conn, username)

    def authenticate(self, key: str) -> AuthUser | None:
        # Most calls are a single read; a write transaction only when last_used_at is due,
        # so a stream of ingest requests does not queue on the write lock to authenticate.
        with self._read() as conn:
            found = _lookup(conn, key)
        if found is None:
            return None
        user, last_used_at = found
        now = _now()
        if _last_used_due(last_used_at, now):
            with self._write() as conn:
                conn.execute(update(api_keys).where(api_keys.c.id == user.key_id).values(last_used_at=now))
        return user

    def create_team(self, name: str) -> TeamRow:
        with self._write() as conn:
            return create_team(conn, name, now=_now())

    def add_team_member(self, team: str, username: str, *, role: str = "member") -> None:
        with self._write() as conn:
            add_member(conn, team, username, role=role, now=_now())

    def remove_team_member(self, team: str, username: str) -> bool:
        with self._write() as conn:
            return remove_member(conn, team, username)

    def list_teams(self) -> list[TeamRow]:
        with self._read() as conn:
            return list_teams(conn)

    def set_project_public(self, entity: str, project: str, public: bool) -> None:
        with self._write() as conn:
            set_project_public(conn, entity, project, public, now=_now())

    def project_is_public(self, entity: str, project: str) -> bool:
        with self._read() as conn:
            return project_is_public(conn, entity, project)

    def incarnation_owner(self, incarnation_id: str) -> tuple[str, str] | None:
        with self._read() as conn:
            return incarnation_owner(conn, incarnation_id)

    def session_owner(self, session_id: str) -> tuple[str, str, str] | None:
        with self._read() as conn:
            return session_owner(conn, session_id)


def _now() -> float:
    return time.time()
