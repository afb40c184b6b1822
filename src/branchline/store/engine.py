"""Creating engines, checking the schema revision, and upgrading it with Alembic."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import QueuePool

from branchline.errors import SchemaError, StoreError
from branchline.store.schema import SCHEMA_REVISION, metadata
from branchline.strict_json import strict_json

__all__ = ["make_engine", "ensure_schema", "upgrade", "current_revision", "normalize_url", "shown_url", "sqlite_file"]

_MIGRATIONS = Path(__file__).with_name("migrations")


def normalize_url(url: str) -> str:
    """Accept `postgresql://` and pick the psycopg 3 driver for it."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def sqlite_file(url: str) -> Path | None:
    """The database file of an SQLite store URL (None for other stores and in-memory ones)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def shown_url(url: str) -> str:
    """A store URL fit for a log line: no password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def _on_sqlite_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    # WAL lets training processes, the writer and the UI share one file;
    # busy_timeout makes concurrent writers queue instead of failing.
    # Let SQLAlchemy's "begin" hook open transactions instead of the driver's legacy mode.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # Only takes effect on a new, empty file; lets deleting runs give pages back to the disk.
    cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _begin_sqlite(conn: Any) -> None:
    # Writers take the write lock up front so concurrent writers queue on busy_timeout instead
    # of failing to upgrade a read lock; readers never block writers in WAL mode.
    if conn.get_execution_options().get("branchline_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Pooled connections: opening one (and its pragmas) costs ~10 ms, a chart reads many
        # series. In WAL mode every transaction still sees a consistent snapshot.
        engine = create_engine(
            url,
            poolclass=QueuePool,
            pool_size=5,
            max_overflow=10,
            connect_args={"timeout": 60, "check_same_thread": False},
            json_serializer=strict_json,
        )
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _begin_sqlite)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_size=5, max_overflow=10, pool_pre_ping=True, json_serializer=strict_json)
    raise StoreError(f"Unsupported store URL {url!r}: use sqlite:///path/to/file.db or postgresql://user@host/db.")


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision stamped in the database, or None for an empty database."""
    with engine.connect() as conn:
        return _stamped_revision(conn)


def _stamped_revision(conn: Connection) -> str | None:
    # A savepoint keeps a missing table from aborting the caller's PostgreSQL transaction.
    try:
        with conn.begin_nested():
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    except OperationalError:
        return None
    except Exception as exc:  # PostgreSQL raises ProgrammingError for a missing table
        if "alembic_version" in str(exc):
            return None
        raise
    return None if row is None else str(row[0])


def _upgrade_command(url: str) -> str:
    return f"branchline db upgrade --store {url}"


def ensure_schema(engine: Engine, url: str, *, create: bool = True) -> None:
    """Create the schema in an empty database; refuse one stamped with another revision."""
    revision = current_revision(engine)
    if revision == SCHEMA_REVISION:
        return
    if revision is None:
        tables = set(inspect(engine).get_table_names())
        if tables & set(metadata.tables):
            raise SchemaError(
                f"The store at {url} has branchline tables but no schema revision; "
                f"run `{_upgrade_command(url)}` to bring it up to date."
            )
        if not create:
            raise SchemaError(f"The store at {url} is empty; run `{_upgrade_command(url)}` first.")
        # Alembic's recipe for new databases: create everything, then stamp the head. The write
        # lock is taken first and the revision read again: another process may have just created it.
        with engine.execution_options(branchline_write=True).begin() as conn:
            if _stamped_revision(conn) == SCHEMA_REVISION:
                return
            metadata.create_all(conn)
            conn.execute(
                text("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
            )
            conn.execute(text("DELETE FROM alembic_version"))
            conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": SCHEMA_REVISION})
        return
    raise SchemaError(
        f"The store at {url} has schema revision {revision!r}, but this branchline needs "
        f"{SCHEMA_REVISION!r}. Run `{_upgrade_command(url)}` (or upgrade branchline if the store is newer)."
    )


def upgrade(url: str, revision: str = "head") -> str:
    """Run the Alembic migrations up to `revision`; returns the revision now stamped."""
    from alembic import command
    from alembic.config import Config

    engine = make_engine(url)
    try:
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
        return current_revision(engine) or ""
    finally:
        engine.dispose()
