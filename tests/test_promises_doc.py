"""The table of durability promises in docs/concepts.md names tests that exist (so it cannot rot)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Durability promises and the tests that try them"
_NODE = re.compile(r"`(tests/[\w/]+\.py)::([\w:]+)(?:\[[^\]]*\])?`")


def _table_rows() -> list[tuple[str, str, str]]:
    """(promise, file, test name) for each row of the section's table."""
    text = (ROOT / "docs" / "concepts.md").read_text()
    assert SECTION in text, f"docs/concepts.md has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| ") or line.startswith(("| Promise", "| ---")):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 2, f"a row is not `| promise | test |`: {line!r}"
        found = _NODE.fullmatch(cells[1])
        assert found is not None, f"not a test node id: {cells[1]!r}"
        rows.append((cells[0], found.group(1), found.group(2)))
    return rows


def _test_names(path: Path) -> set[str]:
    """Test functions of a module, as `name` and `Class::name`."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name.startswith("test_"):
                    names.add(f"{node.name}::{item.name}")
    return names


def test_every_promise_names_a_test_that_exists() -> None:
    rows = _table_rows()
    assert len(rows) >= 20, "the table lost its rows"
    missing = []
    for promise, file, name in rows:
        path = ROOT / file
        if not path.is_file() or name not in _test_names(path):
            missing.append(f"{file}::{name} ({promise})")
    assert not missing, "docs/concepts.md names tests that do not exist:\n" + "\n".join(missing)


def test_the_core_promises_are_in_the_table() -> None:
    """The promises README.md and docs/concepts.md make in words each keep a row."""
    promises = " ".join(p for p, _, _ in _table_rows()).lower()
    for words in (
        "kernel",
        "writer drains",
        "both die",
        "torn",
        "middle of a journal",
        "full disk",
        "idempotent",
        "never waits on the network",
        "offline",
        "rewind archives",
        "stop",
    ):
        assert words in promises, f"no row promises {words!r}"
