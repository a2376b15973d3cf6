"""pyroscope-io alone, no pyrospan-run: asyncio tasks burning CPU below layers of awaits.

Started by run.py with the address of a recording receiver.  It configures pyroscope-io's
Stack sampler the way pyrospan-run does (every thread, deep stacks, the sample rate as the
CPU-timer interval), runs ``--tasks`` tasks on one event loop, each burning CPU in steps
of ``--step-ms`` below ``--depth`` coroutine frames with an ``await`` between steps, then
stops the profiler so that the last profile is sent.

    python program.py ADDRESS [--tasks 6] [--steps 3000] [--step-ms 0.1] [--depth 60]
        [--wall-loop]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import pyroscope


def burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


async def steps(count: int, seconds: float) -> None:
    for _ in range(count):
        burn(seconds)
        await asyncio.sleep(0)


async def layer(depth: int, count: int, seconds: float) -> None:
    if depth <= 1:
        await steps(count, seconds)
    else:
        await layer(depth - 1, count, seconds)


async def run(tasks: int, depth: int, count: int, seconds: float) -> None:
    await asyncio.gather(*(layer(depth, count, seconds) for _ in range(tasks)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address")
    parser.add_argument("--tasks", type=int, default=6)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--step-ms", type=float, default=0.1)
    parser.add_argument("--depth", type=int, default=60)
    parser.add_argument("--wall-loop", action="store_true", help="no CPU timers (3.12+)")
    args = parser.parse_args()
    # max_nframe, max_threads (0: all), adaptive sampling and its settings, CPU timers, 10 ms.
    pyroscope.configure_experimental_stack_profiler(
        256, 0, True, 0.01, 100000, 0.0, 600, 95.0, not args.wall_loop, 10
    )
    started = pyroscope.configure(
        application_name="whole-stacks",
        server_address=args.address,
        sample_rate=100,
        upload_interval=1,
        cpu_implementation=pyroscope.ProfilerImplementation.Stack,
    )
    if started is False:
        raise SystemExit("pyroscope.configure() refused the Stack sampler")
    asyncio.run(run(args.tasks, args.depth, args.steps, args.step_ms / 1000))
    time.sleep(2.5)  # the last upload window
    pyroscope.shutdown()


if __name__ == "__main__":
    main()
