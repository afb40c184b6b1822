"""Vocabulary shared by the SDK, the store and the server: states, record kinds, ids."""

from __future__ import annotations

import enum
import secrets

from branchline.errors import UsageError

__all__ = [
    "RunState",
    "RecordKind",
    "TERMINAL_STATES",
    "generate_run_id",
    "generate_incarnation_id",
    "validate_run_id",
    "validate_project_name",
    "random_run_name",
]


class RunState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CRASHED = "crashed"
    KILLED = "killed"
    PREEMPTING = "preempting"
    PREEMPTED = "preempted"


TERMINAL_STATES = frozenset({RunState.FINISHED, RunState.FAILED, RunState.CRASHED, RunState.KILLED, RunState.PREEMPTED})


class RecordKind(enum.IntEnum):
    """The kinds of journal record. Values are part of the on-disk format: never renumber.

    Each kind's fields, their types and limits are declared once, in `branchline.records.SPECS`.
    """

    HEADER = 1  # the run spec; first record of every journal
    HISTORY = 2  # one committed history row: (step, timestamp, data)
    SUMMARY = 3  # explicit summary edits: (sets, removes)
    CONFIG = 4  # config edits: (sets,)
    METRIC = 5  # a define_metric definition
    META = 6  # name / notes / tags / group / job_type edits
    EXIT = 7  # the exit code; last record of a finished run
    PREEMPTING = 8
    OUTPUT = 9  # console output
    SYSTEM = 10  # one system-metrics sample
    FILE = 11  # a run file was stored
    ALERT = 12
    METADATA = 13  # machine and code metadata, merged into the incarnation's run_metadata
    ROW_SCHEMA = 14  # the keys of a float-row layout: (layout id, keys)
    FLOAT_ROW = 15  # one committed row of floats in a known layout (a binary frame, see sdk/journal.py)
    ROW_BLOCK = 16  # consecutive float rows as columns: what the writer hands the store for FLOAT_ROWs
    MEDIA = 17  # a logged media object's raw content: the writer encodes it into a run file


_RUN_ID_FORBIDDEN = set(":;,#?/'")
_PROJECT_FORBIDDEN = set("/\\#?%:")
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def generate_run_id() -> str:
    """Eight characters from [a-z0-9], as wandb does."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def generate_incarnation_id() -> str:
    """The immutable internal id of one incarnation of a run."""
    return secrets.token_hex(8)


def validate_run_id(run_id: object) -> str:
    if not isinstance(run_id, str):
        raise UsageError(f"Run ID must be a string, got {type(run_id).__name__}.")
    if not run_id:
        raise UsageError("Run ID cannot be empty.")
    if not run_id.strip():
        raise UsageError("Run ID cannot contain only whitespace.")
    if run_id != run_id.strip():
        raise UsageError(f"Run ID {run_id!r} cannot start or end with whitespace.")
    bad = sorted(set(run_id) & _RUN_ID_FORBIDDEN)
    if bad:
        raise UsageError(
            f"Run ID {run_id!r} contains invalid characters {' '.join(bad)}; it cannot contain any of : ; , # ? / '"
        )
    if len(run_id) > 128:
        raise UsageError(f"Run ID is {len(run_id)} characters long; the limit is 128.")
    return run_id


def validate_project_name(project: object) -> str:
    if not isinstance(project, str) or not project:
        raise UsageError("Project name must be a non-empty string.")
    if len(project) > 128:
        raise UsageError(f"Project name is {len(project)} characters long; the limit is 128.")
    bad = sorted(set(project) & _PROJECT_FORBIDDEN)
    if bad:
        raise UsageError(
            f"Project name {project!r} contains invalid characters {' '.join(bad)}; "
            "it cannot contain any of / \\ # ? % :"
        )
    return project


_ADJECTIVES = [
    "amber",
    "autumn",
    "bold",
    "brisk",
    "calm",
    "cosmic",
    "crimson",
    "daring",
    "dawn",
    "deep",
    "eager",
    "easy",
    "fallen",
    "fancy",
    "fine",
    "fluent",
    "fresh",
    "gentle",
    "glad",
    "golden",
    "grand",
    "happy",
    "hardy",
    "hidden",
    "icy",
    "jolly",
    "keen",
    "kind",
    "lively",
    "lucky",
    "misty",
    "noble",
    "olive",
    "proud",
    "quiet",
    "rapid",
    "rare",
    "royal",
    "rustic",
    "serene",
    "sharp",
    "shiny",
    "silent",
    "silver",
    "smooth",
    "snowy",
    "solar",
    "stellar",
    "stoic",
    "sunny",
    "swift",
    "tidy",
    "twilight",
    "vivid",
    "warm",
    "wild",
    "wise",
    "young",
]
_NOUNS = [
    "bird",
    "brook",
    "butterfly",
    "cloud",
    "dawn",
    "dew",
    "dream",
    "dust",
    "field",
    "fire",
    "firefly",
    "flower",
    "fog",
    "forest",
    "frost",
    "glade",
    "grass",
    "haze",
    "hill",
    "lake",
    "leaf",
    "meadow",
    "moon",
    "morning",
    "mountain",
    "night",
    "ocean",
    "paper",
    "pine",
    "planet",
    "pond",
    "rain",
    "river",
    "sea",
    "shadow",
    "sky",
    "smoke",
    "snow",
    "sound",
    "star",
    "stone",
    "sun",
    "sunset",
    "surf",
    "thunder",
    "tree",
    "valley",
    "violet",
    "water",
    "wave",
    "wind",
    "wood",
]


def random_run_name(number: int) -> str:
    """A display name of the form adjective-noun-N."""
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{number}"
