"""Run a root span, then start a Python child (child_span.py) and print what it reported."""

import subprocess
import sys
from pathlib import Path

from opentelemetry import trace

tracer = trace.get_tracer("starts_child")
with tracer.start_as_current_span("parent-work") as span:
    print("parent_span_id", format(span.get_span_context().span_id, "016x"), flush=True)

child = Path(__file__).with_name("child_span.py")
result = subprocess.run([sys.executable, str(child)], capture_output=True, text=True, check=True)
print("child", result.stdout.strip(), flush=True)
