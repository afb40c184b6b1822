"""`ServerSettings`: everything the app factory needs, passed explicitly (no globals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from branchline.store import DEFAULT_CRASH_TIMEOUT
from branchline.store.stops import DEFAULT_STOP_TIMEOUT

__all__ = ["DEFAULT_UI_DIST", "ServerSettings"]

#: Where `scripts/build-frontend.sh` puts the built web app inside the package.
DEFAULT_UI_DIST = Path(__file__).resolve().parent / "ui_dist"


@dataclass(frozen=True)
class ServerSettings:
    """How one server process is set up.

    `store_url` is opened once in the app's lifespan. `files_dir` is where run files are stored
    (`<branchline_dir>/files` for the embedded store); derived from a SQLite URL when omitted.
    `ui_dist` is the built web app (None: serve only the API). `read_only` refuses every write.
    """

    store_url: str
    ui_dist: Path | None = DEFAULT_UI_DIST
    files_dir: Path | None = None
    #: Blob storage for artifacts and run files (`--artifacts`): a path, file:// or s3:// URL.
    artifacts_url: str | None = None
    read_only: bool = False
    crash_timeout: float = DEFAULT_CRASH_TIMEOUT
    #: Seconds a stop from the UI may take before the run is marked killed (store/stops.py).
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    #: Origins allowed to call the API from another origin (the Vite dev server, for instance).
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    #: Check API keys (server/auth.py). Off: the caller is the local single user (`branchline ui`).
    auth_required: bool = False

    def resolved_files_dir(self) -> Path | None:
        """The run files directory: explicit, or `files/` beside an SQLite store file."""
        if self.files_dir is not None:
            return self.files_dir
        prefix = "sqlite:///"
        if self.store_url.startswith(prefix):
            db_path = Path(self.store_url[len(prefix) :])
            if str(db_path) not in ("", ":memory:"):
                return db_path.parent / "files"
        return None
