"""Keep the signals an app handles for the app's threads: ours are started with them blocked.

The kernel hands a signal sent to the process (``kill``, Ctrl-C, ``docker stop``) to one
of its threads that does not block it, the main thread first unless that thread already
has a signal pending.  Python runs the handler on the main thread anyway, but only a
signal that reached the main thread interrupts what it is blocked in: one that reached
another thread leaves ``time.sleep(60)`` to sleep its minute before ``KeyboardInterrupt``
(measured on Python 3.14 under load: 1 in 40 runs of a program that sleeps after its
work, with pyrospan's threads; none without them).  A program without pyrospan-run has
no such threads, so pyrospan-run must not add any: its own threads and pyroscope-io's
native ones (which inherit the mask of the thread that starts them) are started with
these signals blocked.  The app's own threads are left as they are.

A forked child needs the same: the SDK's exporters start their thread again there, from
their own at-fork hook, on the thread that forked, whose mask is the app's.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

# Signals an app or its server handles, or whose default action ends the process.
# SIGPROF (the Stack sampler's timers), SIGSEGV/SIGBUS (its memory copies) and SIGCHLD
# stay open: they are sent to a thread, or nobody waits on them in a blocking call.
KEPT_FOR_MAIN = frozenset(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH")
    if hasattr(signal, name)
)


@contextlib.contextmanager
def blocked_for_new_threads() -> Iterator[None]:
    """Threads started inside inherit a mask that blocks :data:`KEPT_FOR_MAIN`.

    The calling thread's own mask is put back on the way out: a signal that came meanwhile
    was held, not lost, and is handled then.
    """
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is None:  # no POSIX threads' masks here: nothing to keep apart
        yield
        return
    try:
        before = mask(signal.SIG_BLOCK, KEPT_FOR_MAIN)
    except (OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        mask(signal.SIG_SETMASK, before)


class ForkedChildMask:
    """Blocks :data:`KEPT_FOR_MAIN` on the forking thread of a child, then puts its mask back.

    :meth:`block` and :meth:`restore` are at-fork hooks (``after_in_child``), registered
    around other hooks that start threads: those run in between, in registration order.
    """

    def __init__(self) -> None:
        self._before: set[int | signal.Signals] | None = None

    def block(self) -> None:
        try:
            self._before = signal.pthread_sigmask(signal.SIG_BLOCK, KEPT_FOR_MAIN)
        except (OSError, ValueError):  # never an error in the app's fork
            self._before = None

    def restore(self) -> None:
        before, self._before = self._before, None
        if before is None:
            return
        # A signal that came meanwhile was held, not lost: it is handled now.
        with contextlib.suppress(OSError, ValueError):
            signal.pthread_sigmask(signal.SIG_SETMASK, before)


@contextlib.contextmanager
def blocked_for_threads_forks_restart() -> Iterator[ForkedChildMask | None]:
    """At-fork hooks registered inside start their threads with :data:`KEPT_FOR_MAIN` blocked.

    Yields the hooks' state, or None where there are no forks or thread masks.
    """
    register = getattr(os, "register_at_fork", None)
    if register is None or not hasattr(signal, "pthread_sigmask"):
        yield None
        return
    mask = ForkedChildMask()
    register(after_in_child=mask.block)
    try:
        yield mask
    finally:
        register(after_in_child=mask.restore)
