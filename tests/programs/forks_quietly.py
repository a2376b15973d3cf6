"""Fork with os.fork, then a multiprocessing fork Process; `own-thread`: start a thread first."""

import multiprocessing
import os
import sys
import threading
import time

stop = threading.Event()
if "own-thread" in sys.argv:
    threading.Thread(target=stop.wait, daemon=True).start()

pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)

process = multiprocessing.get_context("fork").Process(target=time.sleep, args=(0.01,))
process.start()
process.join()
stop.set()
print("forked", process.exitcode, flush=True)
