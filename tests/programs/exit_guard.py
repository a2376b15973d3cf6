"""Arms a NativeExitGuard, forks, and ends the chosen way; prints what ran where.

``python exit_guard.py CHILD PARENT``: CHILD is ``finalizes`` (the child ends through
Python's finalization without arming) or ``arms`` (the child arms its own guard, then
finalizes); PARENT is ``finalizes`` or ``c-exit`` (the C library's ``exit()`` while
Python runs, as uWSGI ends its processes).
"""

import ctypes
import os
import sys

from pyrospan_launch.agent.native_exit import NativeExitGuard

child_ends, parent_ends = sys.argv[1:3]
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
