"""One root span that burns CPU in a function of its own, then prints the span id."""

import sys
import time

from opentelemetry import trace

tracer = trace.get_tracer("hot_span")


def burn_cpu_in_span(seconds: float) -> int:
    count = 0
    end = time.process_time() + seconds
    while time.process_time() < end:
        count += 1
    return count


with tracer.start_as_current_span("checkout") as span:
    burn_cpu_in_span(float(sys.argv[1]) if len(sys.argv) > 1 else 1.5)
    print("span_id", format(span.get_span_context().span_id, "016x"), flush=True)
