"""The package's layout rules, checked on its import graph (read with `ast`, nothing imported).

- No import cycles between modules. Importing a module runs its packages' `__init__` too, so an
  import of `a.b.c` is an edge to `a.b.c`, `a.b` and `a` (the importer's own packages excepted:
  they are already being imported). Imports under `if TYPE_CHECKING:` are exempt.
- No imports inside a function body (the usual way to hide a cycle), except under TYPE_CHECKING.
- Imports flow one way, entry points -> transports -> GraphQL -> domain -> data: `db/` imports
  nothing of resolvers/graphql/subscriptions/media; `resolvers/` nothing of graphql,
  subscriptions' transport or media; `subscriptions/` outside `transport/` nothing of graphql.
  Type-only imports count here too: a type is a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = "nchat_live"
SRC = Path(__file__).resolve().parents[1] / "src" / ROOT

# (importer prefix, importer exception prefix or None, forbidden target prefixes)
DIRECTION_RULES: list[tuple[str, str | None, tuple[str, ...]]] = [
    ("nchat_live.db", None, ("nchat_live.resolvers", "nchat_live.graphql", "nchat_live.subscriptions",
                             "nchat_live.media")),
    ("nchat_live.resolvers", None, ("nchat_live.graphql", "nchat_live.subscriptions.transport", "nchat_live.media")),
    ("nchat_live.subscriptions", "nchat_live.subscriptions.transport", ("nchat_live.graphql",)),
]


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    line: int
    in_function: bool
    type_checking: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, in_function: bool, type_checking: bool) -> Iterator[tuple[ast.AST, bool, bool]]:
    for child in ast.iter_child_nodes(node):
        yield child, in_function, type_checking
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield stmt, in_function, True
                yield from _walk(stmt, in_function or isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef), True)
            for stmt in child.orelse:
                yield stmt, in_function, type_checking
                yield from _walk(
                    stmt, in_function or isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef), type_checking
                )
            continue
        inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        yield from _walk(child, inner, type_checking)


def imports_of(name: str, path: Path, known: set[str]) -> list[Import]:
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    found: list[Import] = []
    for node, in_function, type_checking in _walk(tree, False, False):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            for alias in node.names:
                # `from package import submodule` imports the submodule.
                sub = f"{module}.{alias.name}"
                targets.append(sub if sub in known else module)
        for target in targets:
            if target == ROOT or target.startswith(ROOT + "."):
                found.append(Import(name, target, getattr(node, "lineno", 0), in_function, type_checking))
    return found


def graph() -> tuple[dict[str, set[str]], list[Import]]:
    mods = modules()
    known = set(mods)
    every: list[Import] = []
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        for imp in imports_of(name, path, known):
            every.append(imp)
            if imp.type_checking:
                continue
            parts = imp.target.split(".")
            for i in range(2, len(parts) + 1):
                step = ".".join(parts[:i])
                if step in known and step not in own:
                    edges[name].add(step)
    return edges, every


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), plus self-imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_the_package() -> None:
    edges, every = graph()
    assert "nchat_live.runtime" in edges and "nchat_live.subscriptions.bus" in edges
    assert any(i.importer == "nchat_live.app" and i.target == "nchat_live.runtime" for i in every)


def test_the_cycle_finder_finds_a_cycle_and_exempts_nothing_else() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    edges, every = graph()
    found = cycles(edges)
    lines = []
    for component in found:
        members = set(component)
        via = [f"    {i.importer}:{i.line} -> {i.target}" for i in every
               if i.importer in members and not i.type_checking
               and any(i.target == m or i.target.startswith(m + ".") for m in members - {i.importer})]
        lines.append(" <-> ".join(component) + "\n" + "\n".join(via))
    assert not found, "import cycles:\n" + "\n".join(lines)


def test_no_imports_inside_functions() -> None:
    bad = []
    for path in modules().values():
        tree = ast.parse(path.read_text(), str(path))
        for node, in_function, type_checking in _walk(tree, False, False):
            if in_function and not type_checking and isinstance(node, ast.Import | ast.ImportFrom):
                bad.append(f"{path.relative_to(SRC.parent)}:{node.lineno}: {ast.unparse(node)}")
    assert not bad, "imports inside functions:\n" + "\n".join(bad)


@pytest.mark.parametrize(("importer", "exception", "forbidden"), DIRECTION_RULES,
                         ids=[rule[0].removeprefix("nchat_live.") for rule in DIRECTION_RULES])
def test_imports_flow_one_way(importer: str, exception: str | None, forbidden: tuple[str, ...]) -> None:
    _, every = graph()

    def under(module: str, prefix: str) -> bool:
        return module == prefix or module.startswith(prefix + ".")

    bad = [
        f"{i.importer}:{i.line} -> {i.target}" for i in every
        if under(i.importer, importer) and not (exception and under(i.importer, exception))
        and any(under(i.target, f) for f in forbidden)
    ]
    assert not bad, f"{importer} may not import {', '.join(forbidden)}:\n" + "\n".join(bad)
