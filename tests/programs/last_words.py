"""One root span burning CPU, then: `wait` for a signal, `own-handler` too, or `exit CODE`.

Prints the span id, then `ready` (waiting) or `appdone <monotonic time>` (exiting) as the
last thing the app does.
"""

import signal
import sys
import time

from opentelemetry import trace


def last_words_work(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


tracer = trace.get_tracer("last_words")
with tracer.start_as_current_span("last-words") as span:
    last_words_work(float(sys.argv[2]) if sys.argv[1] != "exit" else 0.2)
    print("span_id", format(span.get_span_context().span_id, "016x"), flush=True)

if sys.argv[1] == "own-handler":

    def on_term(signum: int, frame: object) -> None:
        print("app handler ran", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)

if sys.argv[1] == "exit":
    print("appdone", time.monotonic(), flush=True)
    sys.exit(int(sys.argv[2]))

# Not print(..., flush=True): on Python 3.14 a signal that arrives while print() ends, just
# before the sleep, waits for the sleep to end, with or without pyrospan-run (CPython's
# doing; pyrospan's own SIGTERM handler is woken, see prints_then_sleeps.py).
sys.stdout.write("ready\n")
sys.stdout.flush()
time.sleep(60)
