"""Arms a NativeExitGuard, forks, and ends the chosen way; prints what ran where.

``python exit_guard.py CHILD PARENT``: CHILD is ``finalizes`` (the child ends through
Python's finalization without arming) or ``arms`` (the child arms its own guard, then
finalizes); PARENT is ``finalizes`` or ``c-exit`` (the C library's ``exit()`` while
Python runs, as uWSGI ends its processes), or ``signalled`` (no fork: a SIGTERM whose
handler calls ``exit()`` arrives while the guard flushes, as in a uWSGI worker that ends by
itself and is told to stop), or ``signalled-beside-a-thread`` (the same with another
thread running, which blocks no signal, as the span exporter's does), or ``unsettled`` (no
fork: the flush reports native code still running, and ``exit(7)`` must end the process
before the handlers registered earlier).
"""

import ctypes
import os
import signal
import sys
import threading
import time

from pyrospan_launch.agent.native_exit import NativeExitGuard

child_ends, parent_ends = sys.argv[1:3]
libc = ctypes.CDLL(None)

if parent_ends in ("signalled", "signalled-beside-a-thread"):
    # uWSGI's worker handler: SIGTERM calls exit() (end_me), here while the guard flushes;
    # a C exit callback registered first stands for the native module's destructors.
    if parent_ends == "signalled-beside-a-thread":
        threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
    destroyed = []
    libc.signal.argtypes = (ctypes.c_int, ctypes.c_void_p)
    libc.signal(signal.SIGTERM, ctypes.cast(libc.exit, ctypes.c_void_p))
    on_exit = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda _: destroyed.append(True))
    getattr(libc, "__cxa_atexit")(on_exit, None, None)

    def stop() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        print(f"stopped in {os.getpid()}; destroyed meanwhile: {bool(destroyed)}", flush=True)

    guard = NativeExitGuard(stop)
    assert guard.arm()
    print(f"parent {os.getpid()}", flush=True)
    libc.exit(0)

if parent_ends == "unsettled":
    on_exit = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda _: print("destroyed", flush=True))
    getattr(libc, "__cxa_atexit")(on_exit, None, None)  # the native module's destructors

    def unsettled() -> bool:
        print(f"stopped in {os.getpid()}", flush=True)
        return False  # as Profiler._flush_before_native_exit when pyroscope-io still stops

    guard = NativeExitGuard(unsettled)
    assert guard.arm()
    libc.exit(7)

guard = NativeExitGuard(lambda: print(f"stopped in {os.getpid()}", flush=True))
assert guard.arm()
pid = os.fork()
if pid == 0:
    if child_ends == "arms":
        assert guard.arm()
    sys.exit(0)
_, status = os.waitpid(pid, 0)
print(f"child {pid} ended with {os.waitstatus_to_exitcode(status)}", flush=True)
print(f"parent {os.getpid()}", flush=True)
if parent_ends == "c-exit":
    ctypes.CDLL(None).exit(0)
