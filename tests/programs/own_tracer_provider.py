"""An app that sets up its own TracerProvider and exporter, the way OpenTelemetry's docs show.

argv: the OTLP/HTTP base URL the app's exporter sends to, and a URL it then fetches.
It imports urllib.request first, so the urllib instrumentation (loaded on that import)
holds a tracer from before the app's provider existed.  Prints the id of its root span.
"""

import contextlib
import sys
import time
import urllib.error
import urllib.request

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider(resource=Resource.create({"service.name": "own-traces"}))
provider.add_span_processor(
    BatchSpanProcessor(
        OTLPSpanExporter(endpoint=f"{sys.argv[1]}/v1/traces"), schedule_delay_millis=200
    )
)
trace.set_tracer_provider(provider)


def own_provider_work(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


tracer = trace.get_tracer("own_tracer_provider")
with tracer.start_as_current_span("own-root") as span:
    own_provider_work(0.6)
print("span_id", format(span.get_span_context().span_id, "016x"), flush=True)
# Any answer will do: the request is what makes the span.
with contextlib.suppress(urllib.error.HTTPError):
    urllib.request.urlopen(sys.argv[2], timeout=10).read()
print("global", type(trace.get_tracer_provider()).__name__, trace.get_tracer_provider() is provider)
