"""Pure aggregation: flame graph trees, top self-time functions, percentiles.

A flame graph is sent to the browser as a flat list of nodes in pre-order, each with its
depth, instead of a nested tree: JSON encoders and decoders recurse on nesting, and a
deep stack must not be able to break either.  The browser lays the nodes out from the
order and the depths alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyrospan_launch.local.store import Frame

ROOT_NAME = "all"


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) with linear interpolation between the closest ranks.

    The same definition as numpy's default: p50 of ``[10, 20, 30, 40]`` is 25.
    """
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class FunctionTime:
    """A function and the CPU time it spent itself (as the leaf of a stack)."""

    name: str
    file: str
    self_ns: int


def top_functions(rows: Iterable[tuple[str, str, int]], limit: int) -> list[FunctionTime]:
    """The ``limit`` functions with the most self time, most first (ties by name)."""
    totals: dict[tuple[str, str], int] = {}
    for name, file, ns in rows:
        totals[(name, file)] = totals.get((name, file), 0) + ns
    ordered = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    return [FunctionTime(name or "(unknown)", file, ns) for (name, file), ns in ordered[:limit]]


@dataclass
class _Node:
    name: str
    file: str
    total: int = 0
    self_value: int = 0
    children: dict[tuple[str, str], _Node] = field(default_factory=dict)


@dataclass(frozen=True)
class FlameGraph:
    """A flame graph as pre-order nodes: (name, file, depth, total ns, self ns)."""

    nodes: list[tuple[str, str, int, int, int]]

    @property
    def total(self) -> int:
        """CPU nanoseconds of the whole graph (the root node's total)."""
        return self.nodes[0][3] if self.nodes else 0

    def as_json(self) -> dict[str, Any]:
        """``{"total", "strings", "nodes": [[name_i, file_i, depth, total, self], ...]}``."""
        strings: list[str] = []
        index: dict[str, int] = {}

        def intern(text: str) -> int:
            found = index.get(text)
            if found is None:
                found = index[text] = len(strings)
                strings.append(text)
            return found

        nodes = [
            [intern(name), intern(file), depth, total, self_ns]
            for name, file, depth, total, self_ns in self.nodes
        ]
        return {"total": self.total, "strings": strings, "nodes": nodes}


def flame_graph(
    stacks: Iterable[tuple[Sequence[Frame], int]], *, min_fraction: float = 0.0
) -> FlameGraph:
    """Merge stacks (root first) and their values into a flame graph.

    Frames merge by (function, file), whatever the line, as Pyroscope shows them.  Nodes
    below ``min_fraction`` of the total are left out (they would be narrower than a
    pixel); their time stays in their parent's total, so the parent is still right.
    Siblings are ordered by name, so the same data always draws the same picture.
    """
    root = _Node(ROOT_NAME, "")
    for frames, value in stacks:
        node = root
        node.total += value
        for name, file, _line in frames:
            key = (name, file)
            child = node.children.get(key)
            if child is None:
                child = node.children[key] = _Node(name, file)
            child.total += value
            node = child
        node.self_value += value
    threshold = root.total * min_fraction
    nodes: list[tuple[str, str, int, int, int]] = []
    pending: list[tuple[_Node, int]] = [(root, 0)]
    while pending:  # iterative: a deep stack must not hit the recursion limit
        node, depth = pending.pop()
        nodes.append((node.name, node.file, depth, node.total, node.self_value))
        children = sorted(node.children.values(), key=lambda n: (n.name, n.file), reverse=True)
        pending.extend((child, depth + 1) for child in children if child.total > threshold)
    return FlameGraph(nodes)
