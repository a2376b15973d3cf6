"""What the live page, the report and the terminal summary show, computed from a store.

The page and the report get the same JSON documents (the page fetches them, the report
embeds them), so both always agree; the terminal summary reads the same group figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from pyrospan_launch.local.aggregate import (
    FunctionTime,
    flame_graph,
    percentile,
    top_functions,
)
from pyrospan_launch.local.store import Scope, Store

#: Flame graph nodes narrower than this share of the whole are left out (sub-pixel).
MIN_FRACTION: Final = 1 / 5000
TOP_FUNCTIONS: Final = 3


@dataclass(frozen=True)
class GroupStats:
    """The root spans of one name: how many, how long, how much CPU, in which functions."""

    name: str
    count: int
    p50_ns: float
    p95_ns: float
    cpu_ns: int
    samples: int
    top: list[FunctionTime]


@dataclass(frozen=True)
class ProcessStats:
    """Every stored sample, in root spans or not."""

    cpu_ns: int
    samples: int
    in_spans_ns: int
    top: list[FunctionTime]


def group_stats(store: Store, top: int = TOP_FUNCTIONS) -> list[GroupStats]:
    """Root spans grouped by name, the most CPU first (then the most spans, then by name)."""
    durations = store.queries.durations_by_name()
    cpu = store.queries.cpu_by_name()
    self_time = store.queries.self_time_by_name()
    groups = [
        GroupStats(
            name=name,
            count=len(values),
            p50_ns=percentile(values, 0.50),
            p95_ns=percentile(values, 0.95),
            cpu_ns=cpu.get(name, (0, 0))[0],
            samples=cpu.get(name, (0, 0))[1],
            top=top_functions(self_time.get(name, []), top),
        )
        for name, values in durations.items()
    ]
    return sorted(groups, key=lambda g: (-g.cpu_ns, -g.count, g.name))


def process_stats(store: Store, top: int = TOP_FUNCTIONS) -> ProcessStats:
    """CPU of the whole process (every service that reported) and its top functions."""
    cpu_ns, samples = store.queries.cpu_total()
    in_spans = sum(cpu for cpu, _ in store.queries.cpu_by_name().values())
    return ProcessStats(
        cpu_ns=cpu_ns,
        samples=samples,
        in_spans_ns=in_spans,
        top=top_functions(store.queries.self_time(Scope("process")), top),
    )


def _functions_json(functions: list[FunctionTime]) -> list[dict[str, Any]]:
    return [{"name": f.name, "file": f.file, "self_ns": f.self_ns} for f in functions]


def summary_document(store: Store, *, span_limit: int, **extra: Any) -> dict[str, Any]:
    """The tables of the page: root spans (the latest ``span_limit``), groups, process."""
    cpu = store.queries.cpu_by_span()
    spans = [
        {
            "id": span.span_id,
            "trace": span.trace_id,
            "name": span.name,
            "service": span.service,
            "start_ms": span.start_ns / 1e6,  # JavaScript numbers cannot hold ns since 1970
            "duration_ns": span.duration_ns,
            "cpu_ns": cpu.get(span.span_id, (0, 0))[0],
            "samples": cpu.get(span.span_id, (0, 0))[1],
            "error": span.status_code == 2,
        }
        for span in store.queries.root_spans(limit=span_limit)
    ]
    process = process_stats(store)
    return {
        "version": store.version,
        "services": store.queries.services(),
        "total_spans": store.queries.root_span_count(),
        "spans": spans,
        "groups": [
            {
                "name": g.name,
                "count": g.count,
                "p50_ns": g.p50_ns,
                "p95_ns": g.p95_ns,
                "cpu_ns": g.cpu_ns,
                "samples": g.samples,
                "top": _functions_json(g.top),
            }
            for g in group_stats(store)
        ],
        "process": {
            "cpu_ns": process.cpu_ns,
            "samples": process.samples,
            "in_spans_ns": process.in_spans_ns,
            "top": _functions_json(process.top),
        },
        "meta": {k: v for k, v in store.queries.meta().items() if k != "schema"},
        **extra,
    }


def flame_title(store: Store, scope: Scope) -> str | None:
    """The heading of a flame graph, or None when the span or name is not stored."""
    if scope.kind == "process":
        return "Whole process"
    if scope.kind == "span":
        span = store.queries.root_span(scope.key)
        return None if span is None else f"Span {span.name} ({span.span_id})"
    count = store.queries.count_named(scope.key)
    return None if not count else f"All {count} spans named {scope.key}"


def flame_document(
    store: Store, scope: Scope, *, min_fraction: float = MIN_FRACTION
) -> dict[str, Any] | None:
    """A flame graph document for the page, or None when the scope names nothing stored."""
    title = flame_title(store, scope)
    if title is None:
        return None
    graph = flame_graph(store.queries.stack_values(scope), min_fraction=min_fraction)
    return {"view": str(scope), "title": title, **graph.as_json()}


def report_flames(store: Store, *, span_limit: int) -> tuple[dict[str, Any], int]:
    """Flame graphs to embed in a report: the process, every name, the busiest spans.

    Returns the documents by view and how many spans with samples were left out
    (beyond the ``span_limit`` with the most CPU).
    """
    flames: dict[str, Any] = {}
    for scope in [Scope("process"), *(Scope("name", g.name) for g in group_stats(store))]:
        document = flame_document(store, scope)
        if document is not None:
            flames[str(scope)] = document
    cpu = store.queries.cpu_by_span()
    root_ids = {span.span_id for span in store.queries.root_spans()}
    busiest = sorted(
        (span_id for span_id in cpu if span_id in root_ids), key=lambda s: (-cpu[s][0], s)
    )
    for span_id in busiest[:span_limit]:
        document = flame_document(store, Scope("span", span_id))
        if document is not None:
            flames[document["view"]] = document
    return flames, max(0, len(busiest) - span_limit)
