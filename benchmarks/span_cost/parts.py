"""The span machinery's parts, switched off one at a time inside one process.

``in_process.py`` compares processes, and two processes of the same code differ by a
percent or more on a 2-core machine.  Here one process under pyrospan-run drives the
FastAPI example in-process (as ``in_process.py --app fastapi`` does: its ASGI app
awaited in a task per request, no network) and switches parts of the span machinery
off and on between blocks of requests, alternating the order from round to round.  The
machine's drift then reaches every part alike, and a part's cost shows to about 1% of
the request.

The parts (each mode leaves out what it names; ``all`` is pyrospan-run as shipped):

* ``no task wrapper``: new asyncio tasks are the C task again, with no labelled coroutine;
* ``no linking``: the span processor is out of the SDK's pipeline and the runtime
  context switches no label, so no root span is linked and no marker is made;
* ``neither``: both, the floor of the comparison (the sampler, the relay and the rest of
  pyrospan-run still run).

The sampler runs at 1 Hz: what is measured is the span machinery on the event loop's
thread, not the samples.  The parts are reached through pyrospan-run's objects in the
process, so this script follows their names when they change.

    python benchmarks/span_cost/parts.py [--rounds 25] [--requests 300]

``--drive`` is the child: it runs under pyrospan-run and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BIN = Path(sys.executable).parent
APP_DIR = ROOT / "examples" / "fastapi_app"
PATH = "/recommendations?products=100"
ALL, NO_TASKS, NO_LINKING, NEITHER = "all", "no task wrapper", "no linking", "neither"
MODES = (NEITHER, ALL, NO_TASKS, NO_LINKING)
WARM_UP_BLOCKS = 2


class Parts:
    """Switches for the span machinery of the agent running in this process."""

    def __init__(self) -> None:
        import opentelemetry.context as otel_context
        from opentelemetry import trace

        from pyrospan_launch.agent import agent as the_agent

        agent = the_agent.current()
        if agent is None or agent.processor is None or agent.labels is None:
            raise SystemExit("parts.py --drive: no span linking in this process")
        self._processor = agent.processor
        self._runtime = otel_context._RUNTIME_CONTEXT
        self._roots = self._processor.roots
        self._labelled_task = asyncio.tasks.Task
        self._c_task = self._labelled_task.__mro__[1]
        pipeline: Any = trace.get_tracer_provider()._active_span_processor  # type: ignore[attr-defined]
        self._pipeline = pipeline
        self._processors = pipeline._span_processors
        self._without = tuple(p for p in self._processors if p is not self._processor)

    def set(self, mode: str) -> None:
        tasks = mode not in (NO_TASKS, NEITHER)
        linking = mode not in (NO_LINKING, NEITHER)
        task = self._labelled_task if tasks else self._c_task
        asyncio.Task = asyncio.tasks.Task = task  # type: ignore[misc]
        self._pipeline._span_processors = self._processors if linking else self._without
        self._runtime._roots = self._roots if linking else None


def drive(requests: int, rounds: int) -> None:
    sys.path.insert(0, str(APP_DIR))
    sys.path.insert(0, str(HERE))
    from app import app  # type: ignore[import-not-found]
    from in_process import _one_request

    parts = Parts()

    async def block() -> float:
        start = time.thread_time()
        for _ in range(requests):
            await asyncio.create_task(_one_request(app, PATH))
        return (time.thread_time() - start) / requests * 1e6

    async def run() -> dict[str, list[float]]:
        timings: dict[str, list[float]] = {mode: [] for mode in MODES}
        for mode in MODES:
            parts.set(mode)
            for _ in range(WARM_UP_BLOCKS):
                await block()
        for round_number in range(rounds):
            for mode in MODES if round_number % 2 == 0 else MODES[::-1]:
                parts.set(mode)
                timings[mode].append(await block())
        parts.set(ALL)
        return timings

    timings = asyncio.run(run())
    floor = statistics.median(timings[NEITHER])
    print(
        f"FastAPI example {PATH}, in one process, {requests} requests a block, {rounds} rounds; "
        f"the app thread's CPU per request (median)\n"
    )
    print("| left out | µs per request | ÷ neither |")
    print("|---|---|---|")
    for mode in MODES:
        median = statistics.median(timings[mode])
        print(f"| {mode} | {median:.1f} | {median / floor:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--requests", type=int, default=300, help="requests a block")
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(args.requests, args.rounds)
        return
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE.parent))
    from loadgen import backend_env

    from pyrospan_launch.receiver.server import Receiver

    command = [str(BIN / "pyrospan-run"), sys.executable, str(Path(__file__).resolve())]
    command += ["--drive", "--rounds", str(args.rounds), "--requests", str(args.requests)]
    if len(os.sched_getaffinity(0)) > 1:
        command = ["taskset", "-c", "0", *command]
    with Receiver() as receiver:
        env = {
            **backend_env(receiver.url, "parts"),
            "PYROSPAN_SAMPLER": "stack",
            "PYROSCOPE_SAMPLE_RATE": "1",
        }
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    print(done.stdout, end="")


if __name__ == "__main__":
    main()
