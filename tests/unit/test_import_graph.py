"""The package's import graph: no cycles, and the launcher side never reaches the agent.

Imports inside functions count: a cycle through a lazy import still ties two modules
together.  ``python tests/unit/test_import_graph.py`` prints the graph.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pyrospan_launch"


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's ``__init__``)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


def import_graph() -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports, anywhere in it.

    A parent package is not an edge: Python imports it before any of its modules anyway.
    """
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    source = node.module or ""
                targets.add(source)
                targets.update(f"{source}.{alias.name}" for alias in node.names)
        graph[name] = {
            target
            for target in targets
            if target in modules and target != name and not name.startswith(f"{target}.")
        }
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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


def test_the_graph_sees_function_level_imports() -> None:
    graph = import_graph()
    # bootstrap imports tracing only inside a function: it must still be an edge.
    assert "pyrospan_launch.agent.tracing" in graph["pyrospan_launch.agent.bootstrap"]


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_cycles_are_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_launcher_and_settings_never_import_the_agent() -> None:
    graph = import_graph()
    crossing = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith(("pyrospan_launch.launcher", "pyrospan_launch.settings"))
        for target in targets
        if target.startswith("pyrospan_launch.agent")
    }
    assert crossing == set()


def test_settings_and_common_import_neither_side() -> None:
    graph = import_graph()
    crossing = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith(("pyrospan_launch.settings", "pyrospan_launch.common"))
        for target in targets
        if target.startswith(("pyrospan_launch.agent", "pyrospan_launch.launcher"))
    }
    assert crossing == set()


def _imports_between(
    graph: dict[str, set[str]], sources: str, targets: str | tuple[str, ...]
) -> set[tuple[str, str]]:
    return {
        (module, target)
        for module, imported in graph.items()
        if module.startswith(sources)
        for target in imported
        if target.startswith(targets)
    }


def test_the_agent_never_imports_the_launcher_or_local_mode() -> None:
    # What both sides need lives below both: PYTHONPATH edits and the log line in common/
    # or settings/, the push and pprof formats and the label names in wire/.
    assert (
        _imports_between(
            import_graph(),
            "pyrospan_launch.agent",
            ("pyrospan_launch.launcher", "pyrospan_launch.local", "pyrospan_launch.receiver"),
        )
        == set()
    )


def test_the_rule_sees_an_agent_import_of_the_receiver() -> None:
    graph = {"pyrospan_launch.agent.relay.rewrite": {"pyrospan_launch.receiver.body"}}
    assert _imports_between(graph, "pyrospan_launch.agent", ("pyrospan_launch.receiver",)) == {
        ("pyrospan_launch.agent.relay.rewrite", "pyrospan_launch.receiver.body")
    }


def test_wire_imports_neither_side() -> None:
    assert (
        _imports_between(
            import_graph(),
            "pyrospan_launch.wire",
            (
                "pyrospan_launch.agent",
                "pyrospan_launch.launcher",
                "pyrospan_launch.local",
                "pyrospan_launch.receiver",
            ),
        )
        == set()
    )


def test_settings_is_the_bottom_layer() -> None:
    graph = import_graph()
    assert _imports_between(graph, "pyrospan_launch.settings", "pyrospan_launch.common") == set()


if __name__ == "__main__":
    shown = import_graph()
    for module in sorted(shown):
        short = sorted(target.removeprefix("pyrospan_launch.") for target in shown[module])
        print(f"{module.removeprefix('pyrospan_launch.') or '(package)'} -> {', '.join(short)}")
    print("cycles:", cycles(shown) or "none")
    sys.exit(1 if cycles(shown) else 0)
