"""The package's shape: no module over 400 lines, no function over 60, no import cycle.

    python scripts/check_shape.py            # checks src/fulliautomatix, exit 1 naming each offender
    python scripts/check_shape.py PACKAGE_DIR

Imports inside functions count as edges too: a lazy import hides a cycle
from Python's loader, not from the reader.  Complexity is ruff's C901
(``make lint``); this script measures what ruff does not.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def module_name(path: Path, root: Path) -> str:
    """The dotted name of the module at `path` in the package at `root` (its __init__ is the package)."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def walk_at_runtime(tree: ast.AST):
    """ast.walk, leaving out `if TYPE_CHECKING:` blocks (imports for annotations only, never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                todo.extend(child.orelse)
            else:
                todo.append(child)


def imported_modules(tree: ast.AST, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The package's modules that a module imports anywhere in its body (functions included)."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in walk_at_runtime(tree):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from . import x` names the module x when there is one; `from .m import f` names m
            candidates = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for candidate in candidates:
            # the nearest module of the package that the dotted name lies in
            while candidate and candidate not in known:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                found.add(candidate)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Every module of the package at `root` mapped to the package's modules it imports.

    A module's parent packages are not edges: importing a.b runs a/__init__ first, but
    that is the loader's order, not a dependency of a.b on what a/__init__ re-exports.
    """
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    known = set(files)
    graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        edges = imported_modules(tree, name, path.name == "__init__.py", known)
        graph[name] = {e for e in edges if not name.startswith(e + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def long_functions(path: Path) -> list[tuple[str, int, int]]:
    """(name, first line, length) of each function in `path` longer than MAX_FUNCTION_LINES (def to last line)."""
    tree = ast.parse(path.read_text(), str(path))
    return [
        (node.name, node.lineno, node.end_lineno - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def problems(root: Path) -> list[str]:
    """One line per module too long, function too long, or import cycle in the package at `root`."""
    found = []
    for path in sorted(root.rglob("*.py")):
        shown = path.relative_to(root.parent)
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            found.append(f"{shown}: {lines} lines (at most {MAX_MODULE_LINES}); split it by concern")
        for name, line, length in long_functions(path):
            found.append(f"{shown}:{line}: {name} is {length} lines (at most {MAX_FUNCTION_LINES})")
    for component in cycles(import_graph(root)):
        found.append("import cycle: " + " <-> ".join(component) + "; move what they share to the lower module")
    return found


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else Path(__file__).resolve().parent.parent / "src" / "fulliautomatix")
    found = problems(root)
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
