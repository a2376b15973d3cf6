"""A root span, an app thread of its own, then each thread's name and blocked signals as JSON.

The masks come from ``/proc/self/task/*/status`` (``SigBlk``), so native threads
(pyroscope-io's) are listed too, by their kernel name.  With ``--fork`` the process
does its work, forks, and the child does the same and prints its own threads.
"""

import json
import os
import signal
import sys
import threading
import time

from opentelemetry import trace

tracer = trace.get_tracer("thread_masks")
if "--fork" in sys.argv:
    with tracer.start_as_current_span("before-fork"):
        pass
    child = os.fork()
    if child:
        _, wait_status = os.waitpid(child, 0)
        sys.exit(os.waitstatus_to_exitcode(wait_status))

with tracer.start_as_current_span("masks"):
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass

stop = threading.Event()
app_thread = threading.Thread(target=stop.wait, name="app-own-thread", daemon=True)
app_thread.start()
time.sleep(1.5)  # a relay push and a span batch: their threads are running by now

names = {t.native_id: t.name for t in threading.enumerate()}
main = threading.get_native_id()
threads = []
for tid in sorted(os.listdir("/proc/self/task"), key=int):
    with open(f"/proc/self/task/{tid}/status") as status:
        line = next(line for line in status if line.startswith("SigBlk:"))
    with open(f"/proc/self/task/{tid}/comm") as comm:
        kernel_name = comm.read().strip()
    blocked = int(line.split()[1], 16)
    threads.append(
        {
            "name": names.get(int(tid), kernel_name),
            "main": int(tid) == main,
            "blocked": [s.name for s in (signal.SIGINT, signal.SIGTERM) if blocked & 1 << (s - 1)],
        }
    )
print(json.dumps(threads), flush=True)
stop.set()
