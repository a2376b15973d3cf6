"""A Flask app written for pyroscope-io: it names its profiles and builds its own TracerProvider.

argv: which set-up comes first, "profiler-first" or "provider-first".  It serves one real
request on a free port (werkzeug's server, in a thread), prints the id of that request's
span, and exits.
"""

import logging
import os
import sys
import threading
import time
import urllib.request

import pyroscope
from flask import Flask
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from werkzeug.serving import make_server


def configure_profiler() -> None:
    pyroscope.configure(
        application_name="flask-shop",
        server_address=os.environ["PYROSCOPE_SERVER_ADDRESS"],
        upload_interval=1,
    )


def configure_tracing() -> None:
    # The default resource: service.name comes from OTEL_SERVICE_NAME, as OpenTelemetry's
    # docs show it.  The exporter reads the OTEL_EXPORTER_OTLP_* variables.
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(), schedule_delay_millis=200))
    trace.set_tracer_provider(provider)


if sys.argv[1] == "profiler-first":
    configure_profiler()
    configure_tracing()
else:
    configure_tracing()
    configure_profiler()

app = Flask(__name__)


def flask_shop_work(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@app.route("/work")
def work() -> str:
    flask_shop_work(0.4)
    return format(trace.get_current_span().get_span_context().span_id, "016x")


logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log on stderr
server = make_server("127.0.0.1", 0, app)
threading.Thread(target=server.serve_forever, daemon=True).start()
with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/work", timeout=30) as answer:
    print("span_id", answer.read().decode(), flush=True)
server.shutdown()
