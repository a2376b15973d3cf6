"""Keep pyrospan's own threads from making the app's ``fork()`` warn.

Two DeprecationWarnings appear at every fork once the profiler runs, though the app did
nothing new: pyroscope-io's "This process is running Pyroscope, use of fork() may lead to
deadlocks" (pyrospan restarts the profiler in the child, which is what that warning asks
for), and, on Python 3.12+, CPython's "This process is multi-threaded, use of fork() may
lead to deadlocks in the child", which counts the profiler's native threads, the
OpenTelemetry export threads and pyrospan's exit helpers.  They show under ``-W default``,
``python -X dev`` or pytest, when ``__main__`` forks (a forkserver's ``-c`` code does),
and become errors under ``-W error``.

Just before each fork this module puts filters for exactly those messages first in
``warnings.filters``: pyroscope-io's always, CPython's only when no other thread is the
app's.  They stay until the next fork decides again (Python 3.13 warns after the
"after fork" hooks, so they cannot be taken away there); those messages come only from a
fork, so between forks the filters change nothing.  A forked child drops them.
Python threads are told apart by name (the SDK's start with ``Otel``, the profile
relay's with ``pyrospan-``) or id (pyrospan's exit helpers and signal watch).  Native
threads Python does not know are taken for the profiler's while it runs (pyroscope-io
starts and ends some of them as it uploads, so they cannot be listed once); without the
profiler they count as the app's.  With ``PYROSPAN_LOG_LEVEL=debug`` nothing
is silenced.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings

from pyrospan_launch.agent import bounded
from pyrospan_launch.agent.lifecycle import Lifecycle
from pyrospan_launch.common import log

PYROSCOPE_MESSAGE = r"This process \(pid=\d+\) is running Pyroscope, use of fork\(\)"
MULTI_THREADED_MESSAGE = r"This process \(pid=\d+\) is multi-threaded, use of \w+\(\)"

# Names of the OpenTelemetry SDK's export threads ("OtelBatchSpanRecordProcessor", ...)
# and of the profile relay's ("pyrospan-relay", "pyrospan-relay-forward", ...).
OUR_THREAD_PREFIXES = ("Otel", "pyrospan-")


def _os_thread_ids() -> set[int] | None:
    try:
        return {int(entry) for entry in os.listdir("/proc/self/task")}
    except (OSError, ValueError):
        return None


def only_pyrospan_threads_besides_caller() -> bool:
    """True when every thread other than the calling one was started by pyrospan's parts."""
    me = threading.get_native_id()
    ours = bounded.helper_thread_ids()
    python_threads = set()
    for thread in threading.enumerate():
        if thread.native_id is None:
            continue
        python_threads.add(thread.native_id)
        if thread.name.startswith(OUR_THREAD_PREFIXES):
            ours.add(thread.native_id)
    if python_threads - ours - {me}:
        return False  # a Python thread of the app's
    if "pyroscope" in sys.modules:
        return True  # the other threads are native: the profiler's
    everyone = _os_thread_ids()
    return everyone is None or not (everyone - ours - {me})


class ForkWarnings:
    """Puts the filters in before each fork and takes them out in the child."""

    def __init__(self) -> None:
        # The filters put in warnings.filters, to take out again by value.
        self._our_filters: list[object] = []
        self._installed = False

    def remove_our_filters(self) -> None:
        """Take out the filters put in before the last fork."""
        # A list typed as a Sequence (not typing.cast: typing costs at start-up).
        filters: list[object] = warnings.filters  # type: ignore[assignment]
        for entry in self._our_filters:
            with contextlib.suppress(ValueError):  # gone if the app reset the filters
                filters.remove(entry)
        self._our_filters.clear()
        # What warnings.filterwarnings and catch_warnings call too: drops stale caches.
        mutated = getattr(warnings, "_filters_mutated", None)
        if callable(mutated):
            mutated()

    def quiet_before_fork(self) -> None:
        """Put filters for the fork warnings pyrospan causes first in warnings.filters."""
        if log.debug_enabled():
            return
        self.remove_our_filters()
        messages = [PYROSCOPE_MESSAGE]
        if only_pyrospan_threads_besides_caller():
            messages.append(MULTI_THREADED_MESSAGE)
        for message in messages:
            warnings.filterwarnings("ignore", message, DeprecationWarning)
            self._our_filters.append(warnings.filters[0])

    def install(self, lifecycle: Lifecycle) -> None:
        """Silence the two fork warnings pyrospan causes, at every fork of this process."""
        if self._installed:
            return
        self._installed = True
        lifecycle.before_fork(self.quiet_before_fork)
        lifecycle.after_fork_in_child(self.remove_our_filters)
