"""The layers of src/branchline and the direction of their imports, checked from the source.

    sdk ──► artifacts ──► store      api ──► artifacts, store      server ──► artifacts, store
    (errors, settings, vocab, records, inflight, _version: below everything)

`store` knows nothing above it; the server never loads the SDK or the public Api; the SDK never
loads the server; and no two branchline modules import each other, directly or around a loop,
whether the import is at module level or inside a function (imports under `TYPE_CHECKING` do not
run and are left out). A lazy import inside a function still makes a cycle: it only hides it until
the function runs.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "branchline"

#: (layer, layers it must never import, directly or through a function-level import).
FORBIDDEN: list[tuple[str, tuple[str, ...]]] = [
    (
        "branchline.store",
        ("branchline.sdk", "branchline.server", "branchline.api", "branchline.artifacts", "branchline.cli"),
    ),
    ("branchline.server", ("branchline.sdk", "branchline.api", "branchline.cli")),
    ("branchline.sdk", ("branchline.server", "branchline.cli")),
    ("branchline.artifacts", ("branchline.sdk", "branchline.server", "branchline.api", "branchline.cli")),
]

#: Function-level imports allowed to close a cycle, as (importer, imported), each with its reason.
#: Keep this empty: a cycle means two modules share an idea that belongs in a third.
CYCLE_ALLOWED: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    lazy: bool  # inside a function: runs when the function is first called, not at import


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports_of(name: str, path: Path) -> Iterator[Import]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def targets(node: ast.Import | ast.ImportFrom) -> Iterator[str]:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
            return
        base = node.module or ""
        if node.level:  # relative: climb from this module's package
            parts = package.split(".")
            parts = parts[: len(parts) - node.level + 1]
            base = ".".join([*parts, base] if base else parts)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            yield sub if sub in MODULES else base  # `from pkg import module` imports the module

    def walk(node: ast.AST, lazy: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    yield from walk_one(other, lazy)
                continue
            yield from walk_one(child, lazy)

    def walk_one(node: ast.AST, lazy: bool) -> Iterator[Import]:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for target in targets(node):
                if target in MODULES and target != name:
                    yield Import(name, target, node.lineno, lazy)
        else:
            inner = lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from walk(node, inner)

    yield from walk(ast.parse(path.read_text(), str(path)), False)


IMPORTS = [imp for name, path in MODULES.items() for imp in _imports_of(name, path)]


def _in(module: str, layer: str) -> bool:
    return module == layer or module.startswith(layer + ".")


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _edges(*, lazy: bool) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for imp in IMPORTS:
        if imp.lazy and (not lazy or (imp.importer, imp.imported) in CYCLE_ALLOWED):
            continue
        edges.setdefault(imp.importer, set()).add(imp.imported)
    return edges


def test_the_source_tree_is_seen() -> None:
    # Guards the checks below against passing vacuously.
    assert {"branchline", "branchline.sdk.run", "branchline.store.store", "branchline.server.app"} <= set(MODULES)
    assert any(imp.lazy for imp in IMPORTS) and any(not imp.lazy for imp in IMPORTS)


@pytest.mark.parametrize(("layer", "forbidden"), FORBIDDEN, ids=[layer for layer, _ in FORBIDDEN])
def test_a_layer_never_imports_the_layers_above_it(layer: str, forbidden: tuple[str, ...]) -> None:
    wrong = [
        f"{imp.importer}:{imp.line} imports {imp.imported}{' (in a function)' if imp.lazy else ''}"
        for imp in IMPORTS
        if _in(imp.importer, layer) and any(_in(imp.imported, other) for other in forbidden)
    ]
    assert wrong == []


def test_nothing_inside_the_package_imports_its_root() -> None:
    # The root is the public surface and reaches the SDK (lazily); a module inside reads what it
    # needs from where it is defined (e.g. `branchline._version`), so it never pulls the SDK in.
    assert [f"{imp.importer}:{imp.line}" for imp in IMPORTS if imp.imported == PACKAGE] == []


@pytest.mark.parametrize("lazy", [False, True], ids=["module-level", "with-function-level"])
def test_no_import_cycles(lazy: bool) -> None:
    cycles = _cycles(_edges(lazy=lazy))
    detail = [
        f"{imp.importer}:{imp.line} -> {imp.imported}{' (in a function)' if imp.lazy else ''}"
        for cycle in cycles
        for imp in IMPORTS
        if imp.importer in cycle and imp.imported in cycle and (lazy or not imp.lazy)
    ]
    assert cycles == [], "\n".join(detail)


def test_the_cycle_allow_list_is_not_stale() -> None:
    lazy = {(imp.importer, imp.imported) for imp in IMPORTS if imp.lazy}
    assert set(CYCLE_ALLOWED) <= lazy


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", ["branchline", "branchline.server", "branchline.server.app", "branchline.store"])
def test_importing_a_lower_layer_loads_no_sdk_module(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "print(','.join(sorted(m for m in sys.modules if m.startswith(('branchline.sdk', 'branchline.api')))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
