"""The package's layers: each subpackage imports only the ones below it, and no two modules
import each other, however lazily. A newcomer reads the walk of the data from the folders:

    core  <  data  <  model  <  serve  <  monitor  <  ops

(`core` imports nothing else of powerops; `ops` may import everything.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "powerops"
LAYERS = ["core", "data", "model", "serve", "monitor", "ops"]


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every powerops module `path` imports: at the top, inside functions, or for typing."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("powerops"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("powerops."))
    known = {module_name(p) for p in SRC.rglob("*.py")}
    return {name for name in found if name in known}


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else len(LAYERS)


GRAPH = {module_name(path): imports(path) for path in SRC.rglob("*.py")}


def test_every_module_lives_in_a_layer() -> None:
    loose = sorted(m for m in GRAPH if layer(m) == len(LAYERS))
    assert loose == ["powerops", "powerops.__main__"], f"modules outside every layer: {loose}"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_a_module_imports_only_its_own_layer_and_those_below(module: str) -> None:
    upward = sorted(name for name in GRAPH[module] if layer(name) > layer(module))
    assert not upward, (
        f"{module} (layer {LAYERS[layer(module)] if layer(module) < len(LAYERS) else 'top'}) "
        f"imports {upward} from a higher layer; move the shared piece down a layer instead"
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every set of modules that import each other in a circle (strongly connected, > 1)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_two_modules_import_each_other() -> None:
    within = {
        m: {t for t in targets if GRAPH.get(t) is not None and t != m}
        for m, targets in GRAPH.items()
    }
    assert cycles(within) == []


def test_the_cycle_finder_finds_a_lazy_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_functions_fit_on_a_screen() -> None:
    """No function in the package runs over 60 lines: a long one becomes named steps."""
    long = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 60:
                    long.append(f"{module_name(path)}.{node.name}: {length} lines")
    assert not long, long
