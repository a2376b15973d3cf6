"""Root spans the Stack sampler cannot label on its own, one case per argument.

* ``thread``: a root span opened by hand on a plain thread, outside any request;
* ``app-tags``: a root span inside a task, and the app's own ``pyroscope.tag_wrapper``;
* ``sigprof``: a root span inside a task, after the app sets its own SIGPROF handler;
* ``faulthandler``: the same after a late ``faulthandler.enable()``;
* ``fork``: a root span inside a task of a forked child (the child prints its span id);
* ``no-await``: a root span inside a task that never awaits once it is open, twice;
* ``opening-step``: a root span inside a task that burns most of its CPU before its
  first ``await``, twice;
* ``after-throw``: as ``opening-step``, the span opened in a step that an exception thrown
  into the task began (a future it awaited failed), twice;
* ``two-in-step``: a task that opens and ends one root span, opens a second one and only
  then awaits, twice (the second span's id is printed as ``other_id``).

Each burns CPU in ``burn_in_sampler_case`` inside its span, then prints the span id.
"""

import asyncio
import faulthandler
import os
import signal
import sys
import threading
import time

from opentelemetry import trace

tracer = trace.get_tracer("sampler_cases")
found: dict[str, str] = {}


def burn_in_sampler_case(seconds: float) -> int:
    count = 0
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        count += 1
    return count


def in_span(name: str) -> None:
    with tracer.start_as_current_span(name) as span:
        burn_in_sampler_case(0.8)
        found["span_id"] = format(span.get_span_context().span_id, "016x")


async def in_task_span(name: str) -> None:
    with tracer.start_as_current_span(name) as span:
        for _ in range(160):
            burn_in_sampler_case(0.005)
            await asyncio.sleep(0)
        found["span_id"] = format(span.get_span_context().span_id, "016x")


async def burning_before_await(name: str) -> None:
    with tracer.start_as_current_span(name) as span:
        burn_in_sampler_case(0.5)  # in the step that opened the span
        await asyncio.sleep(0)
        burn_in_sampler_case(0.1)
        found["span_id"] = format(span.get_span_context().span_id, "016x")


def main(case: str) -> None:
    if case == "thread":
        worker = threading.Thread(target=in_span, args=("by-hand",), name="by-hand-worker")
        worker.start()
        worker.join()
    elif case == "app-tags":
        import pyroscope

        with pyroscope.tag_wrapper({"tenant": "acme"}):
            asyncio.run(in_task_span("tagged"))
    elif case == "sigprof":
        signal.signal(signal.SIGPROF, lambda signum, frame: print("app SIGPROF handler ran"))
        asyncio.run(in_task_span("after-sigprof"))
    elif case == "fork":
        pid = os.fork()
        if pid:
            os.waitpid(pid, 0)
            return
        asyncio.run(in_task_span("in-child"))
    elif case == "no-await":

        async def without_await(name: str) -> None:
            in_span(name)

        asyncio.run(without_await("no-await-1"))
        asyncio.run(without_await("no-await-2"))
    elif case == "opening-step":
        asyncio.run(burning_before_await("opening-1"))
        asyncio.run(burning_before_await("opening-2"))
    elif case == "after-throw":

        class Refused(Exception):
            pass

        async def recovering_after_throw(name: str) -> None:
            failing = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(failing.set_exception, Refused())
            try:
                await failing  # the task's next step begins with Refused thrown in
            except Refused:
                await burning_before_await(name)  # in the step that the throw began

        asyncio.run(recovering_after_throw("after-throw-1"))
        asyncio.run(recovering_after_throw("after-throw-2"))
    elif case == "two-in-step":

        def burn_first_of_two(seconds: float) -> None:
            burn_in_sampler_case(seconds)

        async def two_in_one_step(name: str) -> None:
            with tracer.start_as_current_span(name + "-a") as first:
                burn_first_of_two(0.3)
            with tracer.start_as_current_span(name + "-b") as span:
                burn_in_sampler_case(0.3)  # the same step as the first span
                await asyncio.sleep(0)
                burn_in_sampler_case(0.1)
                found["span_id"] = format(span.get_span_context().span_id, "016x")
                found["other_id"] = format(first.get_span_context().span_id, "016x")

        asyncio.run(two_in_one_step("two-1"))
        asyncio.run(two_in_one_step("two-2"))
    elif case == "faulthandler":
        faulthandler.enable()
        asyncio.run(in_task_span("after-faulthandler"))
    else:
        asyncio.run(in_task_span("in-task"))
    print("span_id", found["span_id"], "other_id", found.get("other_id", "-"), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
