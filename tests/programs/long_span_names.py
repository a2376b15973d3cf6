"""Root spans with very long names, on a plain thread and in asyncio tasks.

``python long_span_names.py ascii|cjk SECONDS`` names every root span 3,000 ASCII
characters or 800 CJK characters (2,400 bytes of UTF-8), burns CPU in a function of its
own inside each, and prints ``thread <span id>`` and ``task <span id>`` lines.
"""

from __future__ import annotations

import asyncio
import sys
import time

from opentelemetry import trace

NAMES = {"ascii": "a" * 2990 + "-0123456789", "cjk": "中" * 800}
tracer = trace.get_tracer("long_span_names")


def burn_on_thread(seconds: float) -> int:
    count = 0
    end = time.process_time() + seconds
    while time.process_time() < end:
        count += 1
    return count


def burn_in_task(seconds: float) -> int:
    count = 0
    end = time.process_time() + seconds
    while time.process_time() < end:
        count += 1
    return count


async def task_span(name: str, seconds: float) -> str:
    with tracer.start_as_current_span(name) as span:
        # Steps of 20 ms, so the two tasks take turns on the loop's thread.
        for _ in range(int(seconds / 0.02)):
            burn_in_task(0.02)
            await asyncio.sleep(0)
        return format(span.get_span_context().span_id, "016x")


async def tasks(name: str, seconds: float) -> list[str]:
    return list(await asyncio.gather(task_span(name, seconds), task_span(name, seconds)))


def main() -> None:
    name = NAMES[sys.argv[1]]
    seconds = float(sys.argv[2])
    with tracer.start_as_current_span(name) as span:
        burn_on_thread(seconds)
        print("thread", format(span.get_span_context().span_id, "016x"), flush=True)
    for span_id in asyncio.run(tasks(name, seconds)):
        print("task", span_id, flush=True)


main()
