"""A traced program that burns known CPU in root spans and says how much it really used.

    python program.py spans [--spans 4] [--cpu-ms 300] [--chunk-ms 20] [--sleep-ms 5]
    python program.py idle SECONDS

``spans``: root spans one after another, each in an asyncio task (whose steps run in
the span's marker frame under either sampler), span ``i`` burning ``(i + 1) * cpu-ms``
of CPU in chunks of ``chunk-ms``, sleeping ``sleep-ms`` after each chunk (so that wall
time and CPU time differ even on an idle machine).  It prints one JSON line: each span's
thread CPU and wall time, and the thread CPU and wall time of ``work_main``, the
function every sample of this work has in its stack.  ``idle``: one short span, then sleep.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from opentelemetry import trace


def burn_cpu(seconds: float) -> None:
    """Use ``seconds`` of this thread's CPU."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


async def one_span(tracer: trace.Tracer, index: int, args: argparse.Namespace) -> dict[str, object]:
    chunks = max(1, round((index + 1) * args.cpu_ms / args.chunk_ms))
    with tracer.start_as_current_span(f"work-{index}") as span:
        cpu, wall = time.thread_time(), time.perf_counter()
        for _ in range(chunks):
            burn_cpu(args.chunk_ms / 1000)
            await asyncio.sleep(args.sleep_ms / 1000)
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        return {
            "span_id": format(span.get_span_context().span_id, "016x"),
            "cpu": cpu,
            "wall": wall,
        }


async def all_spans(args: argparse.Namespace) -> list[dict[str, object]]:
    tracer = trace.get_tracer("cpu-accounting")
    # Each span in a task of its own, as a request is: task steps run in marker frames.
    return [await asyncio.create_task(one_span(tracer, i, args)) for i in range(args.spans)]


def work_main(args: argparse.Namespace) -> dict[str, object]:
    cpu, wall = time.thread_time(), time.perf_counter()
    spans = asyncio.run(all_spans(args))
    return {
        "spans": spans,
        "cpu": time.thread_time() - cpu,
        "wall": time.perf_counter() - wall,
    }


IDLE_SPAN = argparse.Namespace(cpu_ms=1.0, chunk_ms=1.0, sleep_ms=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    spans = commands.add_parser("spans")
    spans.add_argument("--spans", type=int, default=4)
    spans.add_argument("--cpu-ms", type=float, default=300.0)
    spans.add_argument("--chunk-ms", type=float, default=20.0)
    spans.add_argument("--sleep-ms", type=float, default=5.0)
    spans.add_argument(
        "--tail", type=float, default=2.5, help="seconds to stay, so that regular pushes carry it"
    )
    spans.add_argument(
        "--warm-up", type=float, default=1.0, help="seconds to wait first: the sampler starting"
    )
    idle = commands.add_parser("idle")
    idle.add_argument("seconds", type=float)
    args = parser.parse_args()
    if args.command == "idle":
        # One span in a task, where either sampler labels it: a root span outside any
        # task would move an automatic choice to py-spy.
        asyncio.run(one_span(trace.get_tracer("cpu-accounting"), 0, IDLE_SPAN))
        print("ready", flush=True)
        time.sleep(args.seconds)
        return
    # A tracer first, so that tracing starts (on first use) before the spans are measured.
    trace.get_tracer("cpu-accounting")
    time.sleep(args.warm_up)
    result = work_main(args)
    print(json.dumps(result), flush=True)
    time.sleep(args.tail)


if __name__ == "__main__":
    main()
