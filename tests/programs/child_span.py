"""A child program: one root span burning CPU; prints a JSON report of itself."""

import json
import os
import sys
import time

from opentelemetry import trace


def child_work(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


tracer = trace.get_tracer("child_span")
with tracer.start_as_current_span("child-work") as span:
    child_work(0.3)
    span_id = format(span.get_span_context().span_id, "016x")

report = {
    "pid": os.getpid(),
    "span_id": span_id,
    "bootstrapped": "pyrospan_launch.agent.bootstrap" in sys.modules,
    "pythonpath": os.environ.get("PYTHONPATH"),
}
print(json.dumps(report))
