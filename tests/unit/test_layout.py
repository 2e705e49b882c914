"""The shape of the tree: no import circle between the product's modules (``localcloud/``,
``lib/``, ``lambda/payments``, ``lambda/handlers``, ``scripts/``), and modules a reader can hold in
their head.

The import graph is read from the source with ``ast``, imports inside functions included (a lazy
import that closes a circle still makes two modules that cannot be read one without the other).
"""

from __future__ import annotations

import ast
from pathlib import Path

from localcloud.config import REPO_ROOT

# Where each package's modules are imported from: lambda/ is the Lambda runtime's root.
PACKAGES = {
    "localcloud": REPO_ROOT,
    "lib": REPO_ROOT,
    "scripts": REPO_ROOT,
    "payments": REPO_ROOT / "lambda",
    "handlers": REPO_ROOT / "lambda",
}
MAX_LINES = 600
# What a longer module's docstring says in its first paragraph, followed by the reason.
LONG_MODULE_MARKER = "one idea:"


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    _module_name(path, root): path
    for package, root in PACKAGES.items()
    for path in sorted((root / package).rglob("*.py"))
}


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The product's modules an import statement names (a package when no module is named)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}".rstrip(".")
        names = [f"{base}.{alias.name}" for alias in node.names]
        names = [name if name in MODULES else base for name in names]
    return {name for name in names if name in MODULES}


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[module] = {
            imported
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for imported in _imported(module, node)
            if imported != module
        }
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle through each back edge a depth-first walk meets, as the modules in it."""
    found: list[list[str]] = []
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = "open"
        path.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                found.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                visit(imported)
        path.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def test_no_module_of_the_product_imports_itself_in_a_circle():
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_circle_through_a_function_level_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_the_imports_it_must():
    graph = import_graph()
    # from-imports of a module, of a package's names, and a lazy import inside a function
    assert "localcloud.services.core" in graph["localcloud.patches"]
    assert "localcloud.services.dynamodb.transactions" in graph["localcloud.services.dynamodb"]
    assert "localcloud.services.sqs.messages" in graph["localcloud.services.sqs.poller"]
    assert "localcloud.patches" in graph["localcloud.server"]
    assert "payments.batch.rows" in graph["payments.batch.chunk"]
    assert "payments.batch" in graph["handlers.batch_tasks"]


def test_a_module_over_600_lines_says_in_its_first_paragraph_why():
    too_long = {}
    for module, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        first_paragraph = (ast.get_docstring(ast.parse(text)) or "").split("\n\n")[0]
        if lines > MAX_LINES and LONG_MODULE_MARKER not in first_paragraph:
            too_long[module] = lines
    assert too_long == {}
