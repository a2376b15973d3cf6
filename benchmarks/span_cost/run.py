"""Span-cost benchmark: what span linking adds per root span, per asyncio task step, per request.

Three measurements, each interleaved over rounds so that machine noise falls on all
variants alike; the figures that matter are the ratios.

1. Microseconds added per root span (``start_as_current_span`` + end, SDK with no
   exporter) by pyroscope-otel's ``PyroscopeSpanProcessor`` and by pyrospan-run's linking
   (its processor plus its label-switching runtime context), with span labels from marker
   frames (the default: one marker function made per root span) and from thread tags.
   Also measured: the floor (floor.py), the least any linking built on the SDK's hooks
   and pyroscope-io's thread tags can cost.
2. Nanoseconds added per asyncio task step by pyrospan-run's task wrapper, with and without
   a root span open in the task, for both methods, with pyroscope-io's real tag calls.
3. Requests/s and CPU-seconds per request of an asyncio app under uvicorn, run under
   pyrospan-run with label switching on and off (OTEL_PYTHON_CONTEXT=contextvars_context
   turns it off), loaded from a second process.  Target: at most 3% lower.

    python benchmarks/span_cost/run.py [--rounds 5] [--skip-http]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent


def per_span_costs(rounds: int, spans: int) -> dict[str, list[float]]:
    """Microseconds per root span for the SDK alone, with the reference, with ours."""
    import opentelemetry.context as otel_context
    import pyroscope
    from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
    from opentelemetry.sdk.trace import TracerProvider
    from pyroscope.otel import PyroscopeSpanProcessor

    from pyrospan_launch.agent.spans import span_context
    from pyrospan_launch.agent.spans.labels import LabelSwitch
    from pyrospan_launch.agent.spans.span_profiles import SpanProfileProcessor

    # A live agent, so tag calls do their real work; it never gets to upload.
    pyroscope.configure(
        application_name="bench", server_address="http://127.0.0.1:9", upload_interval=3600
    )
    default_context = ContextVarsRuntimeContext()
    switching_context = span_context.LabelSwitchingRuntimeContext()

    sdk_only = TracerProvider()
    reference = TracerProvider()
    reference.add_span_processor(PyroscopeSpanProcessor())
    ours = TracerProvider()
    from pyrospan_launch.agent.profiler import _tag_functions

    switch = LabelSwitch(*_tag_functions(pyroscope))
    processor = SpanProfileProcessor(switch)
    ours.add_span_processor(processor)
    switching_context.bind(processor, switch)
    frames = TracerProvider()
    frames_switch = LabelSwitch(*_tag_functions(pyroscope), frames=True)
    frames_processor = SpanProfileProcessor(frames_switch)
    frames.add_span_processor(frames_processor)
    frames_context = span_context.LabelSwitchingRuntimeContext()
    frames_context.bind(frames_processor, frames_switch)
    # The same linking through the SDK's public API only (what runs where otel_compat
    # finds a private field changed): what the shortcuts save.
    from pyrospan_launch.agent.otel_compat import PUBLIC

    public_processor = SpanProfileProcessor(switch, sdk_shortcuts=PUBLIC)
    public = TracerProvider()
    public.add_span_processor(public_processor)
    public_context = span_context.LabelSwitchingRuntimeContext()
    public_context.bind(public_processor, switch)

    from floor import FloorLinking

    floor_linking = FloorLinking(*_tag_functions(pyroscope))
    floor = TracerProvider()
    floor.add_span_processor(floor_linking.processor)

    variants: dict[str, tuple[TracerProvider, object]] = {
        "sdk": (sdk_only, default_context),
        "reference": (reference, default_context),
        "pyrospan": (ours, switching_context),
        "pyrospan frames": (frames, frames_context),
        "pyrospan, public API": (public, public_context),
        "floor": (floor, floor_linking.runtime_context),
    }
    timings: dict[str, list[float]] = {name: [] for name in variants}
    for round_number in range(rounds):
        order = list(variants)
        if round_number % 2:
            order.reverse()
        for name in order:
            provider, runtime = variants[name]
            otel_context._RUNTIME_CONTEXT = runtime  # type: ignore[attr-defined]
            tracer = provider.get_tracer("bench")
            start = time.perf_counter()
            for _ in range(spans):
                with tracer.start_as_current_span("GET /bench"):
                    pass
            timings[name].append((time.perf_counter() - start) / spans * 1e6)
    otel_context._RUNTIME_CONTEXT = default_context  # type: ignore[attr-defined]
    pyroscope.shutdown()
    return timings


def per_step_costs(rounds: int, steps: int) -> dict[str, list[float]]:
    """Nanoseconds per task step: plain asyncio, and wrapped, outside and inside a root span.

    Inside a span, the tags method shows the span's labels on the thread for the step and
    takes them down after it (four native calls of pyroscope-io, timed here for real);
    the frames method calls the step through the span's marker instead.
    """
    import pyroscope

    from pyrospan_launch.agent.profiler import _tag_functions
    from pyrospan_launch.agent.spans.labels import CURRENT, LabelSwitch, RootLabels
    from pyrospan_launch.agent.spans.task_steps import LabelledCoroutine

    pyroscope.configure(
        application_name="bench", server_address="http://127.0.0.1:9", upload_interval=3600
    )
    labels = (("span_id", "0123456789abcdef"), ("span_name", "GET /bench"))
    tags_root = RootLabels(labels)
    frames_root = RootLabels(labels, marker_parts=("0123456789abcdef", "GET /bench", ""))

    async def stepper(root: RootLabels | None) -> None:
        if root is not None:
            CURRENT.set(root)
        for _ in range(steps):
            await asyncio.sleep(0)

    def measure(wrap: bool, root: RootLabels | None) -> float:
        switch = LabelSwitch(*_tag_functions(pyroscope), frames=root is frames_root)

        async def main() -> float:
            loop = asyncio.get_running_loop()
            if wrap:
                loop.set_task_factory(
                    lambda loop, coro, **kw: asyncio.Task(
                        LabelledCoroutine(coro, switch), loop=loop, **kw
                    )
                )
            start = time.perf_counter()
            await asyncio.gather(*(asyncio.ensure_future(stepper(root)) for _ in range(4)))
            return (time.perf_counter() - start) / (4 * steps) * 1e9

        return asyncio.run(main())

    variants: dict[str, Callable[[], float]] = {
        "plain": lambda: measure(False, None),
        "wrapped, no span": lambda: measure(True, None),
        "wrapped, in span, tags": lambda: measure(True, tags_root),
        "wrapped, in span, frames": lambda: measure(True, frames_root),
    }
    timings: dict[str, list[float]] = {name: [] for name in variants}
    for round_number in range(rounds):
        order = list(variants)
        if round_number % 2:
            order.reverse()
        for name in order:
            timings[name].append(variants[name]())
    pyroscope.shutdown()
    return timings


def marker_cost(rounds: int, count: int) -> list[float]:
    """Microseconds to make one root span's marker function."""
    from pyrospan_launch.agent.spans.span_markers import make_marker

    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(count):
            make_marker(f"{i:016x}", "GET /bench")
        timings.append((time.perf_counter() - start) / count * 1e6)
    return timings


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--http-seconds", type=float, default=8.0)
    args = parser.parse_args()

    spans = per_span_costs(args.rounds, args.spans)
    sdk = median(spans["sdk"])
    reference_added = median([r - s for r, s in zip(spans["reference"], spans["sdk"], strict=True)])
    ours_added = median([o - s for o, s in zip(spans["pyrospan"], spans["sdk"], strict=True)])
    print(f"Per root span (median of {args.rounds} interleaved rounds of {args.spans} spans)\n")
    print("| | us per root span | added to the SDK alone |")
    print("|---|---|---|")
    print(f"| OpenTelemetry SDK alone | {sdk:.2f} | |")
    print(
        f"| + pyroscope-otel PyroscopeSpanProcessor | {median(spans['reference']):.2f} | "
        f"{reference_added:.2f} |"
    )
    print(f"| + pyrospan-run linking, tags | {median(spans['pyrospan']):.2f} | {ours_added:.2f} |")
    frames_added = median(
        [o - s for o, s in zip(spans["pyrospan frames"], spans["sdk"], strict=True)]
    )
    print(
        f"| + pyrospan-run linking, frames (default) | {median(spans['pyrospan frames']):.2f} "
        f"| {frames_added:.2f} |"
    )
    public_added = median(
        [p - s for p, s in zip(spans["pyrospan, public API"], spans["sdk"], strict=True)]
    )
    print(
        f"| + pyrospan-run linking, tags, SDK public API only | "
        f"{median(spans['pyrospan, public API']):.2f} | {public_added:.2f} |"
    )
    floor_added = median([f - s for f, s in zip(spans["floor"], spans["sdk"], strict=True)])
    print(
        f"| (floor: the bare minimum any linking does, see floor.py) | "
        f"{median(spans['floor']):.2f} | {floor_added:.2f} |"
    )
    print(
        f"\nratio of added cost to pyroscope-otel's: frames {frames_added / reference_added:.2f}, "
        f"tags {ours_added / reference_added:.2f}, floor {floor_added / reference_added:.2f}; "
        f"public API only / with the SDK shortcuts (tags): {public_added / ours_added:.2f}; "
        f"making one marker: {median(marker_cost(args.rounds, args.spans)):.2f} us\n"
    )

    steps = per_step_costs(args.rounds, args.steps)
    plain = median(steps["plain"])
    print(
        f"Per asyncio task step (median of {args.rounds} rounds of {args.steps} steps x 4 tasks)\n"
    )
    print("| | ns per step | added |")
    print("|---|---|---|")
    for name, values in steps.items():
        added = "" if name == "plain" else f"{median(values) - plain:.0f}"
        print(f"| {name} | {median(values):.0f} | {added} |")
    print()

    if not args.skip_http:
        from http_compare import compare_switching

        compare_switching(args.rounds, args.http_seconds)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
