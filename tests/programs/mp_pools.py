"""Run root spans in multiprocessing pool workers; argv: METHOD:END ... (END is join or terminate).

Prints one JSON line per task: the start method, the worker's pid and the span id.
"""

import json
import multiprocessing
import os
import sys
import time

from opentelemetry import trace


def pool_task_work(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def task(_: int) -> tuple[int, str]:
    tracer = trace.get_tracer("mp_pools")
    with tracer.start_as_current_span("pool-task") as span:
        pool_task_work(0.3)
        return os.getpid(), format(span.get_span_context().span_id, "016x")


if __name__ == "__main__":
    for spec in sys.argv[1:]:
        method, end = spec.split(":")
        pool = multiprocessing.get_context(method).Pool(2)
        results = pool.map(task, range(4), chunksize=1)
        if end == "join":
            pool.close()  # workers leave their loop and end through os._exit
        else:
            pool.terminate()  # workers get SIGTERM, as `with Pool(...)` does
        pool.join()
        for pid, span_id in results:
            print(json.dumps({"method": method, "pid": pid, "span_id": span_id}), flush=True)
