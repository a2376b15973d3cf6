"""Stop the Stack sampler before the C library's ``exit()`` tears down its native module.

A uWSGI worker told to stop (SIGINT or SIGTERM from its master, a reload) ends inside
the signal handler, through ``exit()``.  ``exit()`` runs what was registered with
``atexit()`` and the static destructors of loaded libraries in reverse order of
registration.  uWSGI registered its own exit code (which finalizes Python, and so runs
the Python ``atexit`` callbacks: pyrospan-run's flush, pyroscope-io's own stop) when it
started; pyroscope-io's native module was loaded after that, so its static destructors
run first.  The Stack sampler's thread, still running, then reads its destroyed caches,
and pyroscope-io's stop does too: the worker dies of SIGSEGV and its spans and last
profile window are lost (measured, CPython 3.13, uWSGI 2.0).

:class:`NativeExitGuard` registers a C ``atexit()`` callback after the native module
was loaded, so it runs before that module's destructors: it stops the profiler from
there, while everything is intact.  uWSGI finalizes Python from the same handler a moment
later, so calling into Python here is what uWSGI itself does.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

from pyrospan_launch.common import log

# ``__cxa_atexit(func, arg, dso)``: what ``atexit()`` calls (glibc exports no ``atexit``
# symbol; musl exports both).  No DSO: the callback runs at exit, never at a dlclose.
_EXIT_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class NativeExitGuard:
    """Runs ``stop`` from a C ``atexit()`` callback, once, in the process that armed it."""

    def __init__(self, stop: Callable[[], object]) -> None:
        self._stop = stop
        self._armed_in = 0
        # The C callback must outlive the process: ctypes frees it with this object.
        self._callbacks: list[object] = []

    def arm(self) -> bool:
        """Register the callback now (after the native module this process uses loaded).

        A forked child arms again, after loading its own copy of the module: the parent's
        registration, inherited, does nothing there.
        """
        pid = os.getpid()
        if self._armed_in == pid:
            return True
        try:
            # getattr: written as an attribute, the name would be mangled inside the class.
            register = getattr(ctypes.CDLL(None), "__cxa_atexit")
            register.argtypes = (_EXIT_CALLBACK, ctypes.c_void_p, ctypes.c_void_p)
            register.restype = ctypes.c_int
            callback = _EXIT_CALLBACK(self._run)
            if register(callback, None, None) != 0:
                return False
        except (OSError, AttributeError) as exc:
            log.debug(f"native exit guard not armed: {exc}")
            return False
        self._callbacks.append(callback)
        self._armed_in = pid
        return True

    def _run(self, _arg: object) -> None:
        if self._armed_in != os.getpid():
            return  # inherited from the parent: the child armed its own
        self._armed_in = 0
        try:
            self._stop()
        except Exception as exc:  # at exit, nothing is left to fall back on
            log.warning(f"exit: the last spans and profiles were not sent ({exc})")
