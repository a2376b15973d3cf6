"""Handles "requests" (root spans) until told to stop, for the local-mode tests.

    python local_app.py CONTROL_DIR EXIT_STATUS FIRST_NAME SECOND_NAME

Waits until CONTROL_DIR/go exists, then alternates a root span called FIRST_NAME (its CPU
in ``price_cart``) and one called SECOND_NAME (its CPU in ``hash_password``) until
CONTROL_DIR/stop exists, and exits with EXIT_STATUS.  SIGTERM ends it with status 7 after
a normal shutdown (so its last spans and profile are still sent).  It writes
CONTROL_DIR/spans, one "name span_id" line per finished span.
"""

from __future__ import annotations

import hashlib
import signal
import sys
import time
from pathlib import Path

from opentelemetry import trace

tracer = trace.get_tracer("local_app")


def price_cart(seconds: float) -> float:
    """Pure-Python arithmetic for ``seconds`` of CPU."""
    total, deadline = 0.0, time.process_time() + seconds
    while time.process_time() < deadline:
        for step in range(2_000):
            total += (step * 31 % 97) * 0.01
    return total


def hash_password(seconds: float) -> str:
    """Repeated hashing for ``seconds`` of CPU."""
    digest, deadline = b"secret", time.process_time() + seconds
    while time.process_time() < deadline:
        for _ in range(2_000):
            digest = hashlib.sha256(digest).digest()
    return digest.hex()


def main() -> int:
    control, status, names = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:5]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))
    deadline = time.monotonic() + 60
    while not (control / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    done = 0
    while not (control / "stop").exists() and time.monotonic() < deadline:
        name = names[done % 2]
        with tracer.start_as_current_span(name) as span:
            (price_cart if done % 2 == 0 else hash_password)(0.15)
        with (control / "spans").open("a") as record:
            record.write(f"{name}\t{span.get_span_context().span_id:016x}\n")
        done += 1
        time.sleep(0.02)
    return status


if __name__ == "__main__":
    sys.exit(main())
