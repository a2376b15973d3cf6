"""Stop the Stack sampler before the C library's ``exit()`` tears down its native module.

``exit()`` runs what was registered with ``atexit()`` and the static destructors of
loaded libraries in reverse order of registration.  pyroscope-io's native module
registers its destructors as it loads and as it is configured (the sampler itself).  A
uWSGI process ends through ``exit()``:

* a worker told to stop (SIGINT or SIGTERM from its master, a reload) from inside the
  signal handler.  uWSGI finalizes Python there (and so runs the Python ``atexit``
  callbacks: pyrospan-run's flush, pyroscope-io's own stop) from a handler it registered
  once the apps were loaded.  A worker that loaded its own copy of the native module
  (agent/native_copy) after that destroys it first, while the sampler's thread still
  runs: the worker died of SIGSEGV and its spans and last profile window were lost
  (measured, CPython 3.13, uWSGI 2.0);
* the master, after it buried its workers.  uWSGI never finalizes Python there, so its
  sampler runs on while the module is destroyed (a SIGSEGV now and then), and its last
  window, with the app's import, was never sent.

:class:`NativeExitGuard` registers a C ``atexit()`` callback after the module was
configured, so it runs before that module's destructors: it stops the profiler from
there, while everything is intact.

The callback is Python code called through ctypes, which takes the GIL first: run after
Python was finalized, it crashes before any of its code can check anything.  That
happens whenever it was registered before the handler that finalizes Python: a uWSGI
worker inherits its master's registration (uWSGI registers its handler after the apps
loaded), and with ``--lazy-apps`` each worker registers that handler after its own guard.
So each registration carries a handle of its own (the ``dso`` argument of
``__cxa_atexit``), and ``__cxa_finalize(handle)`` runs and removes it while Python is
alive: in a forked child before it arms its own, and from a Python ``atexit`` callback
when Python finalizes.  Both need glibc's ``__cxa_finalize``; without it the guard does
not arm.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
from collections.abc import Callable

from pyrospan_launch.common import log

# ``__cxa_atexit(func, arg, dso)``: what ``atexit()`` calls (glibc exports no ``atexit``
# symbol).  glibc calls ``func(arg, status)``: ``exit()``'s status, 0 from ``__cxa_finalize``.
_EXIT_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int)


class _Registration:
    """One ``__cxa_atexit`` entry: the C callback and the handle that names it."""

    def __init__(self, callback: object) -> None:
        # Both must outlive the entry: ctypes frees the callback with its object, and the
        # handle's address is what tells this entry from every other.
        self.callback = callback
        self.handle = ctypes.c_char()

    @property
    def address(self) -> int:
        return ctypes.addressof(self.handle)


class NativeExitGuard:
    """Runs ``stop`` from a C ``atexit()`` callback, once, in the process that armed it.

    ``stop`` returns False when native code that the remaining exit handlers would destroy
    still runs (a flush past its deadline): the process then ends at once, with ``exit()``'s
    status, without them.  A crash would lose as much and say less.
    """

    def __init__(self, stop: Callable[[], object]) -> None:
        self._stop = stop
        self._armed_in = 0
        self._registrations: list[_Registration] = []
        self._python_exit_hooked = False

    def arm(self) -> bool:
        """Register the callback now (after the native module this process uses started).

        A forked child arms again: the parent's registration, inherited, is removed first
        (it would run after Python's finalization there).  False when this C library
        cannot remove a registration (not glibc): the guard is then not armed at all.
        """
        pid = os.getpid()
        if self._armed_in == pid:
            return True
        try:
            libc = ctypes.CDLL(None)
            # getattr: written as attributes, the names would be mangled inside the class.
            register = getattr(libc, "__cxa_atexit")
            getattr(libc, "__cxa_finalize")
            libc.gnu_get_libc_version  # noqa: B018 - musl's __cxa_finalize does nothing
        except (OSError, AttributeError) as exc:
            log.debug(f"native exit guard not armed: {exc}")
            return False
        self.release()
        register.argtypes = (_EXIT_CALLBACK, ctypes.c_void_p, ctypes.c_void_p)
        register.restype = ctypes.c_int
        registration = _Registration(_EXIT_CALLBACK(self._run))
        if register(registration.callback, None, registration.address) != 0:
            return False
        self._registrations.append(registration)
        self._armed_in = pid
        if not self._python_exit_hooked:
            # Inherited by forked children, where it releases their registrations too.
            self._python_exit_hooked = True
            atexit.register(self.release)
        return True

    def release(self) -> None:
        """Run and remove every registration this process holds, its parents' too.

        Called while Python is alive: before arming in a forked child, and when Python
        finalizes.  An inherited registration does nothing when run (another process
        armed it); this process's own stops the profiler, which the lifecycle does only
        once.
        """
        if not self._registrations:
            return
        finalize = getattr(ctypes.CDLL(None), "__cxa_finalize")
        finalize.argtypes = (ctypes.c_void_p,)
        finalize.restype = None
        registrations, self._registrations = self._registrations, []
        for registration in registrations:
            finalize(registration.address)
        self._armed_in = 0

    def _run(self, _arg: object, status: int) -> None:
        if self._armed_in != os.getpid():
            return  # inherited from the parent: the child armed its own
        self._armed_in = 0
        _hold_ending_signals()
        try:
            settled = self._stop()
        except Exception as exc:  # at exit, nothing is left to fall back on
            log.warning(f"exit: the last spans and profiles were not sent ({exc})")
            return
        if settled is False:
            os._exit(status)


def _hold_ending_signals() -> None:
    """Ignore the signals that end a uWSGI process, in every thread, until it exits.

    A uWSGI worker that ends by itself (``--max-requests``) can be told to stop while the
    flush runs: the master's SIGINT on shutdown, a reload.  uWSGI's handler calls
    ``exit()`` again, on whichever thread the signal lands, and that runs the rest of the
    exit handlers (the native module's destructors among them) under the running flush:
    the process crashed, or ended with that worker's last spans unsent.  Blocking the
    signals on this thread was not enough: a process-directed signal goes to any thread
    that does not block it (the span exporter's, pyroscope-io's), and a worker stopped
    during its own recycling lost its spans (measured: about 1 run in 7 beside two CPU
    hogs).  Ignored, the signal is dropped wherever it lands, and the process ends once
    the flush, which has its own deadline, is done.  Not restored: the process is ending.
    The C library's ``signal()`` sets it from any thread, where Python's allows the main
    thread only.
    """
    import signal

    ending = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
    try:
        libc_signal = ctypes.CDLL(None).signal
        libc_signal.argtypes = (ctypes.c_int, ctypes.c_void_p)
        libc_signal.restype = ctypes.c_void_p
        for signum in ending:
            libc_signal(int(signum), int(signal.SIG_IGN))
    except (AttributeError, OSError) as exc:  # pragma: no cover - glibc always has it
        log.debug(f"exit: signals not ignored during the flush, held on this thread: {exc}")
        with contextlib.suppress(OSError, ValueError):
            signal.pthread_sigmask(signal.SIG_BLOCK, set(ending))
