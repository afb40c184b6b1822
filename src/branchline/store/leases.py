"""Leases: background work (crash reaping) runs in one server process at a time, however many run.

`open_lease(engine, name)` gives a `Lease` for the job `name`. `acquire()` is called every tick by
each process that could do the job: it takes the lease when it is free, keeps it while it is held,
and answers whether this process holds it now. Whoever holds it does the job; the others wait.

- PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) on a dedicated connection,
  outside the pool. PostgreSQL drops the lock when that connection ends, so a replica that is
  killed frees the lease for another one on its next tick; no expiry clock to tune, no table to
  migrate. TCP keepalives on both ends of that connection bound how long a holder whose machine
  vanished keeps it (about 30 s). The key folds in the schema, so separate installations sharing
  a database never contend. The lock needs a real session: point
  replicas at PostgreSQL or at a pooler in session mode, not in transaction mode.
- SQLite file: an exclusive `flock` on a file beside the database (`<db>-<name>.lease`); the
  kernel drops it when the process ends. One host, so that is all it takes.
- In-memory SQLite, or no `fcntl`: one process by construction; the lease is always held.

A lease is a best effort at "once", not a fence: if the holder's connection breaks silently, it
may run one more tick while another replica has taken over. Jobs run under it must be idempotent
(reaping is: it only moves runs still marked running whose writer is gone).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from abc import ABC, abstractmethod
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.pool import NullPool

__all__ = ["AdvisoryLease", "FileLease", "Lease", "LocalLease", "open_lease"]

#: libpq keepalives on the lease connection: the holder notices a vanished database within ~30 s.
_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "connect_timeout": 10,
}


_SERVER_KEEPALIVES = (
    "SELECT set_config('tcp_keepalives_idle', '10', false), set_config('tcp_keepalives_interval', '5', false), "
    "set_config('tcp_keepalives_count', '3', false)"
)


class Lease(ABC):
    """The right to run background job `name`, held by at most one process at a time."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._held = False

    @property
    def held(self) -> bool:
        """Whether this process held the lease at the last `acquire()`."""
        return self._held

    @abstractmethod
    def acquire(self) -> bool:
        """Take the lease if it is free, or check that this process still holds it; whether it does."""

    @abstractmethod
    def release(self) -> None:
        """Give the lease up (it is free for another process at once); safe to call twice."""

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


class LocalLease(Lease):
    """A store no other process can open: this process always holds the lease."""

    def acquire(self) -> bool:
        self._held = True
        return True

    def release(self) -> None:
        self._held = False


class FileLease(Lease):
    """An exclusive `flock` on a file: one process per host holds it until it releases or ends."""

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name)
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        import fcntl

        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        self._held = True
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
        self._held = False


class AdvisoryLease(Lease):
    """A PostgreSQL session-level advisory lock held on a connection of its own."""

    def __init__(self, name: str, engine: Engine) -> None:
        super().__init__(name)
        # Outside the store's pool: a pooled connection would carry the lock back into the pool,
        # and a pool's recycling would drop it at random. NullPool really closes on release.
        self._engine = create_engine(
            engine.url,
            poolclass=NullPool,
            connect_args={**_KEEPALIVES, "application_name": f"branchline lease {name}"[:63]},
        ).execution_options(isolation_level="AUTOCOMMIT")
        self._conn: Connection | None = None
        self.key: int | None = None

    def _key(self, conn: Connection) -> int:
        schema = conn.execute(text("SELECT current_schema()")).scalar() or ""
        digest = hashlib.sha256(f"branchline:{schema}:{self.name}".encode()).digest()
        return int.from_bytes(digest[:8], "big") >> 1  # a non-negative bigint

    def _still_held(self, conn: Connection, key: int) -> bool:
        # A bigint advisory key shows in pg_locks as its high and low 32 bits, objsubid 1.
        found = conn.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                "AND granted AND objsubid = 1 AND classid::bigint = :high AND objid::bigint = :low"
            ),
            {"high": key >> 32, "low": key & 0xFFFFFFFF},
        ).scalar()
        return bool(found)

    def acquire(self) -> bool:
        if self._conn is not None and self.key is not None:
            try:
                if self._still_held(self._conn, self.key):
                    return True
            except Exception:
                pass  # the connection broke: PostgreSQL has dropped the lock with it
            self.release()
        conn = self._engine.connect()
        try:
            key = self._key(conn)
            taken = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
        except Exception:
            conn.close()
            raise
        if not taken:
            conn.close()  # a standby keeps no connection open between tries
            return False
        # PostgreSQL's side of the keepalives: it probes the holder and ends the session (and the
        # lock) when the holder's machine stops answering, instead of after the OS's 2 hours. A
        # server that refuses them still drops the lock when it sees the connection close.
        with contextlib.suppress(Exception):
            conn.execute(text(_SERVER_KEEPALIVES))
        self._conn, self.key, self._held = conn, key, True
        return True

    def release(self) -> None:
        conn, self._conn, self._held = self._conn, None, False
        if conn is not None:
            with contextlib.suppress(Exception):  # ending the session frees the lock, however it ends
                conn.close()


def open_lease(engine: Engine, name: str) -> Lease:
    """The lease on background job `name` among every process using the database behind `engine`."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLease(name, engine)
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        try:
            import fcntl  # noqa: F401 - POSIX only
        except ImportError:  # pragma: no cover - Windows: one server process per store there
            return LocalLease(name)
        return FileLease(name, Path(f"{database}-{name}.lease"))
    return LocalLease(name)
