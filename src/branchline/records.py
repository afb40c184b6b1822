"""The journal record, declared once: each kind's named, typed fields and the limits they keep.

A record is a list `[sequence, kind, *fields]` (msgpack in the journal, msgpack or JSON over
HTTP). This module is the single description of those fields. The SDK builds records from it
(`SPECS[kind].build`), the writer and the server check them with it (`check_record`), the store
names their fields with it (`SPECS[kind].named`), and `log()` refuses values it could never store
(`check_loggable`). It imports nothing from the SDK, the server, the store or the Api, so every
layer can use it.

To add a record kind: give it a number in `vocab.RecordKind`, declare its fields in `SPECS`, and
add a handler to the store's dispatch table (store/apply.py).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from branchline.summaries import MetricDef
from branchline.vocab import RecordKind, RunState

__all__ = [
    "INT32",
    "MAX_DEPTH",
    "MAX_KEY_LENGTH",
    "MAX_KEYS",
    "MAX_LAYOUTS",
    "MAX_MEDIA_BYTES",
    "MEDIA_KINDS",
    "MAX_TEXT",
    "Field",
    "RecordError",
    "RecordSpec",
    "SPECS",
    "check_loggable",
    "check_record",
    "clean_json",
    "clean_text",
    "flat_numbers",
    "spec_of",
]

#: Sequence numbers, steps, sizes and exit codes are stored as 32-bit integers.
INT32 = 2**31 - 1
#: Longest key (dotted, for nested dicts) a history row, a layout or a summary path may use.
MAX_KEY_LENGTH = 512
#: Deepest nesting of dicts and lists in a logged value, config or summary.
MAX_DEPTH = 32
#: Most keys in one float-row layout.
MAX_KEYS = 10_000
#: Most float-row layouts in one journal (the layout id is a u16).
MAX_LAYOUTS = 65_535
#: Longest free text: notes, console lines, alert text.
MAX_TEXT = 1_000_000
#: Longest short text: names, groups, job types, tags, alert titles.
MAX_SHORT = 256
_PID_MAX = 4_194_304


class RecordError(ValueError):
    """A record (or a logged value) that cannot be stored; `field` names where, e.g. `data.loss`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


Checker = Callable[[Any, str], Any]


@dataclass(frozen=True)
class Field:
    """One named field of a record: what it holds and the check (returning the cleaned value)."""

    name: str
    type: str
    check: Checker


@dataclass(frozen=True)
class RecordSpec:
    """One record kind: its fields in order after `[sequence, kind]`."""

    kind: RecordKind
    fields: tuple[Field, ...]
    doc: str
    #: A check across fields (ROW_BLOCK's column lengths), run after each field's own.
    whole: Callable[[list[Any], str], None] | None = None

    @property
    def arity(self) -> int:
        return 2 + len(self.fields)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def build(self, seq: int, *values: Any) -> list[Any]:
        """The record as the journal holds it."""
        if len(values) != len(self.fields):
            raise TypeError(f"a {self.kind.name} record has {len(self.fields)} fields, got {len(values)}")
        return [seq, int(self.kind), *values]

    def named(self, record: list[Any] | tuple[Any, ...]) -> dict[str, Any]:
        """The record's fields by name."""
        return dict(zip(self.names, record[2:], strict=True))

    def check(self, record: list[Any], where: str) -> list[Any]:
        """The record, checked and cleaned (text made storable), or `RecordError` naming the field."""
        out = [record[0], self.kind]
        for spec, value in zip(self.fields, record[2:], strict=True):
            out.append(spec.check(value, f"{where}.{spec.name}"))
        if self.whole is not None:
            self.whole(out, where)
        return out


# -- value checks -----------------------------------------------------------------------------------
def clean_text(text: str) -> str:
    """Text every store can hold: PostgreSQL cannot take NUL, and a lone surrogate cannot be encoded."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def clean_value(value: Any, where: str, depth: int = 0, *, allow_nonfinite: bool) -> Any:
    """`value` as plain JSON-like data (str keys, 64-bit ints), or `RecordError` naming the spot."""
    kind = type(value)
    if kind is float:
        if not allow_nonfinite and not math.isfinite(value):
            raise RecordError(where, f"{where or 'value'} is {value}; JSON fields take finite numbers only")
        return value
    if kind is int:
        if not -(2**63) <= value < 2**64:
            raise RecordError(where, f"{where or 'value'} is an integer out of the 64-bit range")
        return value
    if kind is str:
        return clean_text(value)
    if value is None or kind is bool:
        return value
    if depth >= MAX_DEPTH:
        raise RecordError(where, f"{where or 'value'} is nested more than {MAX_DEPTH} levels deep")
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise RecordError(where, f"{where or 'value'} has a non-string key {key!r}")
            clean_key = clean_text(key)
            inner = f"{where}.{clean_key}" if where else clean_key
            out[clean_key] = clean_value(item, inner, depth + 1, allow_nonfinite=allow_nonfinite)
        return out
    if kind is list:
        return [
            clean_value(item, f"{where}[{i}]", depth + 1, allow_nonfinite=allow_nonfinite)
            for i, item in enumerate(value)
        ]
    raise RecordError(where, f"{where or 'value'} has unsupported type {kind.__name__}")


def clean_json(value: dict[str, Any]) -> dict[str, Any]:
    """A config or metadata dict as plain JSON (finite numbers only); ValueError names the spot."""
    cleaned = clean_value(value, "", 0, allow_nonfinite=False)
    assert isinstance(cleaned, dict)
    return cleaned


def flat_numbers(row: dict[Any, Any]) -> bool:
    """Whether `row` is the common case: short clean string keys, float/bool/int64 values."""
    for key, item in row.items():
        if type(key) is not str or len(key) > MAX_KEY_LENGTH or "\x00" in key:
            return False
        kind = type(item)
        if kind is float or kind is bool or (kind is int and -(2**63) <= item < 2**63):
            continue
        return False
    return True


def _key_lengths(row: dict[str, Any], field: str, prefix: tuple[str, ...]) -> None:
    for key, item in row.items():
        path = (*prefix, key)
        if isinstance(item, dict) and item and not item.get("_type"):
            _key_lengths(item, field, path)
        elif len(".".join(path)) > MAX_KEY_LENGTH:
            dotted = ".".join(path)
            raise RecordError(field, f"{field}: the key {dotted[:80]!r}… is longer than {MAX_KEY_LENGTH} characters")


def integer(low: int, high: int) -> Checker:
    def check(value: Any, field: str) -> int:
        if type(value) is not int or not low <= value <= high:
            raise RecordError(field, f"{field} must be an integer from {low} to {high}")
        return int(value)

    return check


def number(value: Any, field: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise RecordError(field, f"{field} must be a finite number")
    return float(value)


def text(max_length: int) -> Checker:
    def check(value: Any, field: str) -> str:
        if type(value) is not str or len(value) > max_length:
            raise RecordError(field, f"{field} must be a string of at most {max_length} characters")
        return clean_text(value)

    return check


def json_object(*, allow_nonfinite: bool) -> Checker:
    def check(value: Any, field: str) -> dict[str, Any]:
        if type(value) is not dict:
            raise RecordError(field, f"{field} must be an object")
        cleaned = clean_value(value, field, 0, allow_nonfinite=allow_nonfinite)
        assert isinstance(cleaned, dict)
        return cleaned

    return check


def row(value: Any, field: str) -> dict[str, Any]:
    """A logged row: numbers may be NaN or infinite (they are metrics); keys fit the key column."""
    if type(value) is not dict:
        raise RecordError(field, f"{field} must be an object")
    if flat_numbers(value):
        return value
    cleaned: dict[str, Any] = json_object(allow_nonfinite=True)(value, field)
    _key_lengths(cleaned, field, ())
    return cleaned


def key_list(value: Any, field: str) -> list[str]:
    # Empty is fine: the layout of `log({})` has no keys, and its rows are still a step each.
    if type(value) is not list or len(value) > MAX_KEYS:
        raise RecordError(field, f"{field} must be a list of at most {MAX_KEYS} key names")
    return [text(MAX_KEY_LENGTH)(k, f"{field}[{i}]") for i, k in enumerate(value)]


def column(value: Any, field: str) -> bytes:
    if type(value) is not bytes:
        raise RecordError(field, f"{field} must be bytes (little-endian 8-byte values)")
    return value


def flag(value: Any, field: str) -> bool:
    return bool(value)


def _state(value: Any, field: str) -> str:
    states = {s.value for s in RunState}
    if value not in states:
        raise RecordError(field, f"{field} must be one of {', '.join(sorted(states))}")
    return str(value)


def _path(value: Any, field: str) -> list[str]:
    if type(value) is not list or not value or len(value) > MAX_DEPTH:
        raise RecordError(field, f"{field} must be a non-empty list of key names")
    return [text(MAX_KEY_LENGTH)(part, f"{field}[{i}]") for i, part in enumerate(value)]


def _summary_sets(value: Any, field: str) -> list[list[Any]]:
    if type(value) is not list:
        raise RecordError(field, f"{field} must be a list of [path, value] pairs")
    out = []
    for i, item in enumerate(value):
        if type(item) is not list or len(item) != 2:
            raise RecordError(f"{field}[{i}]", f"{field}[{i}] must be [path, value]")
        out.append(
            [
                _path(item[0], f"{field}[{i}].path"),
                clean_value(item[1], f"{field}[{i}].value", 0, allow_nonfinite=True),
            ]
        )
    return out


def _summary_removes(value: Any, field: str) -> list[list[str]]:
    if type(value) is not list:
        raise RecordError(field, f"{field} must be a list of key paths")
    return [_path(p, f"{field}[{i}]") for i, p in enumerate(value)]


def _metric(value: Any, field: str) -> dict[str, Any]:
    definition: dict[str, Any] = json_object(allow_nonfinite=False)(value, field)
    try:
        metric = MetricDef.from_json(definition)
    except (KeyError, TypeError, ValueError):
        raise RecordError(field, f"{field} must have a string `name`") from None
    if not isinstance(definition.get("name"), str) or not all(isinstance(s, str) for s in metric.summary):
        raise RecordError(field, f"{field} needs a string name and a list of summary names")
    if not isinstance(metric.step_metric, str | None):
        raise RecordError(field, f"{field}.step_metric must be a string")
    return definition


_META_TEXT = {"name": MAX_SHORT, "notes": MAX_TEXT, "group": MAX_SHORT, "job_type": MAX_SHORT}


def _meta(value: Any, field: str) -> dict[str, Any]:
    values: dict[str, Any] = json_object(allow_nonfinite=False)(value, field)
    for name, limit in _META_TEXT.items():
        if name in values:
            text(limit)(values[name], f"{field}.{name}")
    tags = values.get("tags", [])
    if type(tags) is not list or not all(type(t) is str and len(t) <= MAX_SHORT for t in tags):
        raise RecordError(f"{field}.tags", f"{field}.tags must be a list of strings")
    return values


def _lines(value: Any, field: str) -> list[list[Any]]:
    if type(value) is not list:
        raise RecordError(field, f"{field} must be a list of [stream, timestamp, text]")
    out = []
    for i, line in enumerate(value):
        if type(line) is not list or len(line) != 3:
            raise RecordError(f"{field}[{i}]", f"{field}[{i}] must be [stream, timestamp, text]")
        out.append(
            [
                text(8)(line[0], f"{field}[{i}].stream"),
                number(line[1], f"{field}[{i}].timestamp"),
                text(MAX_TEXT)(line[2], f"{field}[{i}].text"),
            ]
        )
    return out


def _block_columns(record: list[Any], where: str) -> None:
    """A ROW_BLOCK's columns hold 8 bytes per row (values: per row and key); sequences increase
    and end at the record's own sequence (the last row's)."""
    keys, columns = record[2], record[3:8]
    rows = len(columns[0]) // 8
    if rows == 0 or any(len(c) != rows * 8 for c in columns[:4]) or len(columns[4]) != rows * 8 * len(keys):
        raise RecordError(f"{where}.columns", f"{where}: column lengths do not match {len(keys)} keys")
    seqs = [int.from_bytes(columns[0][i : i + 8], "little", signed=True) for i in range(0, len(columns[0]), 8)]
    if any(b <= a for a, b in itertools.pairwise(seqs)) or seqs[-1] != record[0]:
        raise RecordError(f"{where}.sequences", f"{where}: row sequences must increase and end at the record's")


_STEP = integer(0, INT32 - 1)

#: Media kinds a MEDIA record may carry (sdk/media): the writer encodes each into a run file.
MEDIA_KINDS = frozenset({"image", "mask", "boxes2D", "table", "audio", "video", "html"})
#: Most raw bytes one MEDIA record may carry (the journal takes records up to 64 MiB).
MAX_MEDIA_BYTES = 48 * 1024 * 1024


def _media_kind(value: Any, field: str) -> str:
    if value not in MEDIA_KINDS:
        raise RecordError(field, f"{field} must be one of {', '.join(sorted(MEDIA_KINDS))}")
    return str(value)


def _media_payload(value: Any, field: str) -> dict[str, Any]:
    """A media object's raw content: JSON-like fields, plus bytes (pixels, samples, a file's content)."""
    if type(value) is not dict:
        raise RecordError(field, f"{field} must be an object")
    out: dict[str, Any] = {}
    size = 0
    for name, item in value.items():
        if type(name) is not str:
            raise RecordError(field, f"{field} has a non-string key {name!r}")
        if type(item) is bytes:
            size += len(item)
            out[name] = item
        else:
            out[name] = clean_value(item, f"{field}.{name}", 1, allow_nonfinite=True)
    if size > MAX_MEDIA_BYTES:
        limit = MAX_MEDIA_BYTES
        raise RecordError(field, f"{field} carries {size} bytes; the most one media object may carry is {limit}")
    return out


def _spec(kind: RecordKind, doc: str, *fields: tuple[str, str, Checker], whole: Any = None) -> RecordSpec:
    return RecordSpec(kind, tuple(Field(n, t, c) for n, t, c in fields), doc, whole)


#: Every record kind the journal, the HTTP ingest and the store know. FLOAT_ROW is a binary frame
#: (see sdk/journal.py) that never leaves the writer: it is sent as ROW_BLOCKs.
SPECS: dict[RecordKind, RecordSpec] = {
    s.kind: s
    for s in (
        _spec(
            RecordKind.HEADER,
            "the run spec; first record of every journal",
            ("spec", "dict", json_object(allow_nonfinite=True)),
        ),
        _spec(
            RecordKind.HISTORY,
            "one committed history row",
            ("step", "int", _STEP),
            ("timestamp", "float", number),
            ("runtime", "float", number),
            ("data", "row", row),
        ),
        _spec(
            RecordKind.SUMMARY,
            "explicit summary edits",
            ("sets", "list[[path, value]]", _summary_sets),
            ("removes", "list[path]", _summary_removes),
        ),
        _spec(RecordKind.CONFIG, "config edits", ("values", "dict", json_object(allow_nonfinite=False))),
        _spec(
            RecordKind.METRIC,
            "a define_metric definition",
            ("definition", "dict", _metric),
            ("overwrite", "bool", flag),
        ),
        _spec(RecordKind.META, "name / notes / tags / group / job_type edits", ("values", "dict", _meta)),
        _spec(
            RecordKind.EXIT,
            "the exit code; last record of a finished run",
            ("exit_code", "int", integer(-INT32, INT32)),
            ("state", "str", _state),
            ("runtime", "float", number),
        ),
        _spec(RecordKind.PREEMPTING, "the run is being preempted"),
        _spec(RecordKind.OUTPUT, "console output", ("lines", "list[[stream, timestamp, text]]", _lines)),
        _spec(
            RecordKind.SYSTEM,
            "one system-metrics sample",
            ("timestamp", "float", number),
            ("runtime", "float", number),
            ("sample", "row", row),
        ),
        _spec(
            RecordKind.FILE,
            "a run file was stored",
            ("path", "str", text(1024)),
            ("size", "int", integer(0, INT32)),
            ("sha256", "str", text(64)),
            ("timestamp", "float", number),
        ),
        _spec(
            RecordKind.ALERT,
            "an alert",
            ("title", "str", text(MAX_SHORT)),
            ("text", "str", text(MAX_TEXT)),
            ("level", "str", text(8)),
            ("timestamp", "float", number),
        ),
        _spec(RecordKind.METADATA, "machine and code metadata", ("values", "dict", json_object(allow_nonfinite=True))),
        _spec(
            RecordKind.ROW_SCHEMA,
            "the keys of a float-row layout",
            ("layout", "int", integer(1, MAX_LAYOUTS)),
            ("keys", "list[str]", key_list),
        ),
        _spec(
            RecordKind.ROW_BLOCK,
            "consecutive float rows as columns",
            ("keys", "list[str]", key_list),
            ("sequences", "<i8 bytes", column),
            ("steps", "<i8 bytes", column),
            ("timestamps", "<f8 bytes", column),
            ("runtimes", "<f8 bytes", column),
            ("values", "<f8 bytes, row-major", column),
            whole=_block_columns,
        ),
        _spec(
            RecordKind.MEDIA,
            "a media object's raw content; the writer encodes it and stores a FILE record in its place",
            ("key", "str", text(MAX_KEY_LENGTH)),
            ("step", "int", _STEP),
            ("kind", "str", _media_kind),
            ("payload", "dict", _media_payload),
        ),
    )
}

_KINDS = {int(k) for k in SPECS}


def spec_of(kind: Any) -> RecordSpec | None:
    """The declaration of a record kind given as an int, or None for an unknown kind."""
    return SPECS[RecordKind(kind)] if type(kind) is int and kind in _KINDS else None


def check_record(record: Any, where: str = "record") -> list[Any]:
    """One record `[sequence, kind, *fields]`, checked and cleaned; `RecordError` names the field."""
    if type(record) is not list or len(record) < 2:
        raise RecordError(where, f"{where} must be a list [sequence, kind, ...]")
    seq = record[0]
    if type(seq) is not int or not 1 <= seq <= INT32:
        raise RecordError(f"{where}.sequence", f"{where}: the sequence number must be an integer from 1 to {INT32}")
    spec = spec_of(record[1])
    if spec is None:
        raise RecordError(f"{where}.kind", f"{where}: unknown record kind {record[1]!r}")
    if len(record) != spec.arity:
        raise RecordError(where, f"{where}: a {spec.kind.name} record has {spec.arity} fields, not {len(record)}")
    return spec.check(record, where)


# -- what log() accepts ------------------------------------------------------------------------------
def check_loggable(data: Mapping[str, Any]) -> None:
    """Raise TypeError, naming the key, for a logged value no store could hold.

    Values are checked as `log()` will journal them: bytes are refused (decode them first), dicts
    need string keys, nesting stops at MAX_DEPTH levels and dotted keys at MAX_KEY_LENGTH characters.
    Everything else msgpack or `values.encode_default` can pack is fine; they raise on the rest.
    """
    for key, value in data.items():
        if len(key) > MAX_KEY_LENGTH:
            raise TypeError(f"The key {key[:80]!r}… is longer than {MAX_KEY_LENGTH} characters; it cannot be logged.")
        kind = type(value)
        if kind is float or kind is int or kind is str or kind is bool or value is None:
            continue
        _check_nested(value, key, 1)


def _check_nested(value: Any, key: str, depth: int) -> None:
    if isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(
            f"The value of {key!r} is {type(value).__name__}, which cannot be logged; "
            "decode it to a str (or log a number, list or dict)."
        )
    if isinstance(value, dict | list | tuple):
        if depth > MAX_DEPTH:
            raise TypeError(f"The value of {key!r} is nested more than {MAX_DEPTH} levels deep; it cannot be logged.")
        if isinstance(value, dict):
            flat = not value.get("_type")
            for inner, item in value.items():
                if type(inner) is not str:
                    raise TypeError(f"The value of {key!r} has a non-string key {inner!r}; keys must be strings.")
                dotted = f"{key}.{inner}"
                if flat and len(dotted) > MAX_KEY_LENGTH:
                    raise TypeError(
                        f"The key {dotted[:80]!r}… is longer than {MAX_KEY_LENGTH} characters; it cannot be logged."
                    )
                _check_nested(item, dotted if flat else key, depth + 1)
        else:
            for item in value:
                _check_nested(item, key, depth + 1)
