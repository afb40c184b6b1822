"""Admin commands for a team server: users, API keys, teams, project visibility, and `login`.

The admin commands work on the store directly (`--store URL`, as `branchline server` does), so
they need database access rather than an admin key. `login` talks to the server over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from branchline.cli.common import resolve_store_url, store_options
from branchline.errors import AuthenticationError, CommError, Error

if TYPE_CHECKING:
    from branchline.store.interface import AuthDirectory

__all__ = ["keys", "login", "projects", "teams", "users"]

DEFAULT_SERVER = "http://127.0.0.1:8765"


@contextmanager
def _store(root_dir: Path | None, store_url: str | None) -> Iterator[AuthDirectory]:
    from branchline.store import open_store

    try:
        store = open_store(resolve_store_url(root_dir, store_url))
    except Error as exc:
        raise click.ClickException(str(exc)) from None
    try:
        yield store
    except Error as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _show_key(key: str, username: str) -> None:
    click.echo(f"API key for {username} (shown once; store it now, e.g. with `branchline login`):")
    click.echo(key)


# -- users ------------------------------------------------------------------------------------------
@click.group()
def users() -> None:
    """Manage the server's users."""


@users.command("create")
@click.argument("username")
@click.option("--email", default="", help="Contact address (informational).")
@click.option("--admin", is_flag=True, help="Mark the user as an administrator.")
@click.option("--no-key", is_flag=True, help="Do not create an API key now.")
@store_options
def users_create(
    username: str, email: str, admin: bool, no_key: bool, root_dir: Path | None, store_url: str | None
) -> None:
    """Create USERNAME (also their personal entity) and, unless --no-key, a first API key."""
    with _store(root_dir, store_url) as store:
        store.create_user(username, email=email, admin=admin)
        click.echo(f"Created user {username}.", err=True)
        if not no_key:
            _, key = store.create_api_key(username, name="first key")
            _show_key(key, username)


@users.command("list")
@store_options
def users_list(root_dir: Path | None, store_url: str | None) -> None:
    """List users, their teams and how many live keys they have."""
    with _store(root_dir, store_url) as store:
        rows = store.list_users()
        live: dict[str, int] = {}
        for key in store.list_api_keys():
            if key.revoked_at is None:
                live[key.username] = live.get(key.username, 0) + 1
    if not rows:
        click.echo("No users. Create one with `branchline users create NAME`.")
        return
    click.echo(f"{'USER':<24} {'ADMIN':<6} {'KEYS':<5} {'CREATED':<17} TEAMS")
    for row in rows:
        flags = "yes" if row.admin else ""
        teams_text = ", ".join(row.teams) or "-"
        click.echo(
            f"{row.username:<24} {flags:<6} {live.get(row.username, 0):<5} {_when(row.created_at):<17} {teams_text}"
        )


# -- keys -------------------------------------------------------------------------------------------
@click.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.argument("username")
@click.option("--name", default="", help="What the key is for (shown in `keys list`).")
@store_options
def keys_create(username: str, name: str, root_dir: Path | None, store_url: str | None) -> None:
    """Create a new API key for USERNAME; it is printed once and stored only as a hash."""
    with _store(root_dir, store_url) as store:
        row, key = store.create_api_key(username, name=name)
    click.echo(f"Created key {row.id} for {username}.", err=True)
    _show_key(key, username)


@keys.command("revoke")
@click.argument("key_id")
@store_options
def keys_revoke(key_id: str, root_dir: Path | None, store_url: str | None) -> None:
    """Revoke a key by its id (as `keys list` shows it); it stops working at once."""
    with _store(root_dir, store_url) as store:
        revoked = store.revoke_api_key(key_id)
    if not revoked:
        raise click.ClickException(f"No live key {key_id!r}; `branchline keys list` shows the keys.")
    click.echo(f"Revoked key {key_id[:15]}.")


@keys.command("list")
@click.argument("username", required=False)
@store_options
def keys_list(username: str | None, root_dir: Path | None, store_url: str | None) -> None:
    """List keys (ids, never the keys themselves), optionally of one user."""
    with _store(root_dir, store_url) as store:
        rows = store.list_api_keys(username)
    if not rows:
        click.echo("No keys.")
        return
    click.echo(f"{'ID':<14} {'USER':<20} {'CREATED':<17} {'LAST USED':<17} {'STATE':<8} NAME")
    for row in rows:
        state = "revoked" if row.revoked_at is not None else "live"
        click.echo(
            f"{row.id:<14} {row.username:<20} {_when(row.created_at):<17} {_when(row.last_used_at):<17} "
            f"{state:<8} {row.name}"
        )


# -- teams ------------------------------------------------------------------------------------------
@click.group()
def teams() -> None:
    """Manage teams: entities whose projects all their members read and write."""


@teams.command("create")
@click.argument("name")
@click.option("--member", "members", multiple=True, help="Add this user (repeatable).")
@store_options
def teams_create(name: str, members: tuple[str, ...], root_dir: Path | None, store_url: str | None) -> None:
    """Create the team NAME, optionally with members."""
    with _store(root_dir, store_url) as store:
        store.create_team(name)
        for username in members:
            store.add_team_member(name, username)
    click.echo(f"Created team {name}" + (f" with {', '.join(members)}." if members else "."))


@teams.command("add-member")
@click.argument("team")
@click.argument("username")
@click.option("--role", type=click.Choice(["member", "admin"]), default="member", show_default=True)
@store_options
def teams_add_member(team: str, username: str, role: str, root_dir: Path | None, store_url: str | None) -> None:
    """Add USERNAME to TEAM (or change their role)."""
    with _store(root_dir, store_url) as store:
        store.add_team_member(team, username, role=role)
    click.echo(f"{username} is a{'n' if role == 'admin' else ''} {role} of {team}.")


@teams.command("remove-member")
@click.argument("team")
@click.argument("username")
@store_options
def teams_remove_member(team: str, username: str, root_dir: Path | None, store_url: str | None) -> None:
    """Remove USERNAME from TEAM."""
    with _store(root_dir, store_url) as store:
        removed = store.remove_team_member(team, username)
    if not removed:
        raise click.ClickException(f"{username} is not a member of {team}.")
    click.echo(f"Removed {username} from {team}.")


@teams.command("list")
@store_options
def teams_list(root_dir: Path | None, store_url: str | None) -> None:
    """List teams and their members."""
    with _store(root_dir, store_url) as store:
        rows = store.list_teams()
    if not rows:
        click.echo("No teams. Create one with `branchline teams create NAME`.")
        return
    for row in rows:
        members = ", ".join(f"{user}{' (admin)' if role == 'admin' else ''}" for user, role in row.members)
        click.echo(f"{row.name}: {members or '(no members)'}")


# -- projects ----------------------------------------------------------------------------------------
@click.group()
def projects() -> None:
    """Project visibility on a team server."""


def _set_visibility(path: str, public: bool, root_dir: Path | None, store_url: str | None) -> None:
    entity, sep, project = path.partition("/")
    if not sep or not entity or not project or "/" in project:
        raise click.ClickException(f"Give the project as ENTITY/PROJECT, not {path!r}.")
    with _store(root_dir, store_url) as store:
        store.set_project_public(entity, project, public)
    what = "public: anyone can read it, members write it" if public else "private to the members of " + entity
    click.echo(f"{entity}/{project} is now {what}.")


@projects.command("public")
@click.argument("path", metavar="ENTITY/PROJECT")
@store_options
def projects_public(path: str, root_dir: Path | None, store_url: str | None) -> None:
    """Make a project readable by anyone, without a key."""
    _set_visibility(path, True, root_dir, store_url)


@projects.command("private")
@click.argument("path", metavar="ENTITY/PROJECT")
@store_options
def projects_private(path: str, root_dir: Path | None, store_url: str | None) -> None:
    """Make a project readable by its entity's members only (the default)."""
    _set_visibility(path, False, root_dir, store_url)


# -- login ---------------------------------------------------------------------------------------------
@click.command()
@click.argument("url", required=False)
@click.option("--key", "api_key", envvar="BRANCHLINE_API_KEY", help="The API key (prompted for when omitted).")
@click.option("--no-verify", is_flag=True, help="Store the key without asking the server about it.")
def login(url: str | None, api_key: str | None, no_verify: bool) -> None:
    """Store a server URL and API key for the SDK, `Api` and the CLI (settings file, mode 0600)."""
    from branchline.sdk.http_sink import HttpSink
    from branchline.settings import Settings, save_settings_file

    current = Settings.resolve({}, None)
    url = (url or current.base_url or DEFAULT_SERVER).rstrip("/")
    if not url.startswith(("http://", "https://")):
        url = "http://" + url
    if not api_key:
        api_key = click.prompt(f"API key for {url}", hide_input=True, default="", show_default=False).strip()
    if not api_key:
        raise click.ClickException("An empty API key cannot be stored.")
    if not no_verify:
        sink = HttpSink(url, api_key, retry_seconds=5.0)
        try:
            viewer = sink.viewer()
        except AuthenticationError:
            raise click.ClickException(
                f"{url} did not accept this key (wrong or revoked); nothing was stored. "
                "An admin creates keys with `branchline keys create USER`."
            ) from None
        except CommError as exc:
            raise click.ClickException(f"Could not reach {url}: {exc}. Use --no-verify to store it anyway.") from None
        finally:
            sink.close()
        if not viewer.get("auth_required"):
            click.echo(f"Note: {url} does not check API keys (a local server without users).", err=True)
        elif viewer.get("username"):
            entities = ", ".join(viewer.get("entities") or [])
            click.echo(f"Logged in to {url} as {viewer['username']} (entities: {entities}).", err=True)
    path = save_settings_file({"base_url": url, "api_key": api_key})
    click.echo(f"Stored the server URL and key in {path} (readable by you only).")
