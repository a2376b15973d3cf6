"""An app that configures the Pyroscope profiler itself, then works in one root span.

argv: the Pyroscope server address the app chooses, and optionally the value of its
``team`` tag.  Prints the span id and what its own configure() returned.
"""

import sys
import time

import pyroscope
from opentelemetry import trace

configured = pyroscope.configure(
    application_name="own-app",
    server_address=sys.argv[1],
    tags={"team": sys.argv[2] if len(sys.argv) > 2 else "own"},
    upload_interval=1,
)


def own_profiler_work(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


tracer = trace.get_tracer("own_profiler")
with tracer.start_as_current_span("own-work") as span:
    own_profiler_work(0.6)
print("span_id", format(span.get_span_context().span_id, "016x"), flush=True)
print("configured", configured, flush=True)
