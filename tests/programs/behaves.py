"""A program whose every visible behaviour is deterministic, for with/without comparisons.

It traces a little work (so that, under pyrospan-run, the SDK and the profiler are busy),
then does what argv[1] says:

* ``output CODE``: writes to stdout and stderr, then exits with CODE;
* ``raise``: raises an exception out of the program (traceback, status 1);
* ``exit-message``: ``sys.exit("...")`` (the message on stderr, status 1);
* ``thread-error``: a thread dies of an exception (threading's report), then exits 0;
* ``wait``: prints ``ready`` and sleeps until a signal ends it;
* ``handler``: the same with its own SIGTERM and SIGINT handlers, which print and exit 4;
* ``ignore``: ignores SIGTERM, prints ``ready``, lives on for a moment and exits 0.
"""

import signal
import sys
import threading
import time

from opentelemetry import trace

tracer = trace.get_tracer("behaves")


def behaves_work() -> int:
    total = 0
    end = time.process_time() + 0.05
    while time.process_time() < end:
        total += 1
    return total


with tracer.start_as_current_span("behaves"):
    behaves_work()

mode = sys.argv[1]
print("mode", mode)
print("to stderr", file=sys.stderr)

if mode == "output":
    sys.stdout.write("no newline at the end")
    sys.exit(int(sys.argv[2]))
if mode == "raise":
    raise ValueError("the program failed on its own")
if mode == "exit-message":
    sys.exit("a message for the user")
if mode == "thread-error":
    worker = threading.Thread(target=lambda: 1 / 0, name="worker")
    worker.start()
    worker.join()
    sys.exit(0)
if mode == "handler":

    def on_signal(signum: int, frame: object) -> None:
        print("handled", signal.Signals(signum).name, flush=True)
        sys.exit(4)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
if mode == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ready", flush=True)
    time.sleep(1.0)
    print("still here")
    sys.exit(0)
print("ready", flush=True)
time.sleep(30)
