"""The import graph, read from the source: the port is a pure contract, ``portfolios`` reaches
``marketdata`` only through it, and no import circle runs through ``marketdata``.

Every import counts, at module level or inside a function: a function-level import hides a
circle from Python at start-up, not from the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _app_modules(package: str) -> dict[str, Path]:
    """The package's modules, tests and migrations left out (they set the stage, not the
    design)."""
    modules = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if "tests" in parts or "migrations" in parts:
            continue
        modules[_module_name(path)] = path
    return modules


def _imports(path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``path`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from marketdata import breaker" imports the submodule marketdata.breaker.
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            # "import marketdata.port" also runs the packages above it; those are __init__s.
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def _graph(package: str) -> dict[str, set[str]]:
    modules = _app_modules(package)
    known = set(modules)
    return {name: _imports(path, known) - {name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_inside_marketdata():
    graph = _graph("marketdata")
    assert "marketdata.tiers" in graph and "marketdata.upstream" in graph  # the graph is read
    assert _cycles(graph) == []


def test_the_port_imports_nothing_else_from_marketdata():
    graph = _graph("marketdata")
    assert graph["marketdata.port"] - {"marketdata"} == set()


def test_portfolios_reaches_marketdata_only_through_the_port():
    marketdata = set(_app_modules("marketdata"))
    portfolios = _app_modules("portfolios")
    assert portfolios  # the package is read
    reached = {
        name: _imports(path, marketdata) - {"marketdata"} for name, path in portfolios.items()
    }
    assert {name: sorted(r) for name, r in reached.items() if r - {"marketdata.port"}} == {}
    assert any(reached.values())  # it does use the port


def test_the_checks_can_fail(tmp_path):
    """The finder sees a circle, and an import hidden in a function, when there is one."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import json\n"
        "def f():\n    from marketdata.tiers import TieredMarketData\n"
        "from marketdata import price_cache\n",
        encoding="utf-8",
    )
    known = {"marketdata", "marketdata.tiers", "marketdata.price_cache", "marketdata.port"}
    assert _imports(probe, known) == {"marketdata", "marketdata.tiers", "marketdata.price_cache"}
