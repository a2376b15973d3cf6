"""Root spans in multiprocessing pool workers, each burning a fixed amount of thread CPU.

    python workload.py WORKERS TASKS WORK_MS

Prints one JSON line per task: the worker's pid, the span id and the thread CPU the
task really used (``time.thread_time``), to compare with what the profile shows.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time

from opentelemetry import trace


def spread_work(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def task(work_ms: float) -> dict[str, object]:
    tracer = trace.get_tracer("sample_spread")
    with tracer.start_as_current_span("spread-task") as span:
        started = time.thread_time()
        spread_work(work_ms / 1000)
        used_ms = (time.thread_time() - started) * 1000
        span_id = format(span.get_span_context().span_id, "016x")
    return {"pid": os.getpid(), "span_id": span_id, "cpu_ms": used_ms}


if __name__ == "__main__":
    workers, tasks, work_ms = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        results = pool.map(task, [work_ms] * tasks, chunksize=1)
        pool.close()
        pool.join()
    for result in results:
        print(json.dumps(result), flush=True)
