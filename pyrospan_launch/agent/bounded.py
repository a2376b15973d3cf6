"""Run shutdown work with a deadline, so a dead or silent backend cannot hold the process.

Flushing the last spans and the last profile window talks to the network: with a backend
that refuses connections the OTLP exporter retries with back-off for up to 10 s, and with
one that accepts and never answers both exporters wait for their HTTP timeouts (7 to 12 s
measured).  A :class:`Standby` runs each call on a helper thread of its own and waits for
all of them together until one deadline; whatever has not finished by then is abandoned,
and the process goes on exiting (an abandoned helper dies with the process).

The helpers are started ahead of time and wait, blocked on a lock, for the word to run:
Python 3.12 refuses to start a thread once the interpreter is finalizing, which is when
``atexit`` handlers run.  They are started with the low-level ``_thread`` module, so they
are never joined at exit and never listed by ``threading.enumerate()``, and everything
waits on locks of this module only: this runs inside signal handlers, where waiting on a
lock the interrupted code may hold could deadlock.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence

from pyrospan_launch.agent import native
from pyrospan_launch.common import log

Call = tuple[str, Callable[[], object]]

# Native thread ids of the helpers, in this process or an ancestor (those are gone here).
_helper_thread_ids: set[int] = set()


def helper_thread_ids() -> set[int]:
    """Native ids of the helper threads started by this module (some may have ended)."""
    return set(_helper_thread_ids)


def count_as_helper() -> None:
    """Count the calling thread among pyrospan's helpers (fork warnings leave them out)."""
    _helper_thread_ids.add(native.get_native_id())


class _Helper:
    """One call and its thread, blocked on ``go`` until told to run; ``done`` says it ended."""

    def __init__(self, name: str, call: Callable[[], object]) -> None:
        self.name = name
        self.call = call
        self.go = native.allocate_lock()
        self.go.acquire()
        self.done = native.allocate_lock()
        self.done.acquire()
        self.told = False
        self.finished = False

    def start(self) -> bool:
        try:
            native.start_new_thread(self._main, ())
        except RuntimeError as exc:  # "can't start new thread": go without it
            log.debug(f"exit: no helper thread for {self.name}: {exc}")
            return False
        return True

    def _main(self) -> None:
        count_as_helper()
        self.go.acquire()
        try:
            self.call()
        except BaseException as exc:
            # Nothing can be done about it while the process ends; say it when debugging.
            log.debug(f"exit: {self.name} failed: {type(exc).__name__}: {exc}")
        finally:
            self.finished = True
            self.done.release()


class Standby:
    """Calls on helper threads started now, run together by :meth:`begin` within a deadline."""

    def __init__(self, calls: Sequence[Call] = ()) -> None:
        self._helpers: list[_Helper] = []
        self._deadline: float | None = None
        for name, call in calls:
            self.add(name, call)

    def add(self, name: str, call: Callable[[], object]) -> None:
        """Start a helper thread that will run ``call`` (named ``name`` in debug lines)."""
        helper = _Helper(name, call)
        if helper.start():
            self._helpers.append(helper)

    @property
    def started(self) -> bool:
        """True once :meth:`begin` told the helpers to run."""
        return self._deadline is not None

    def begin(self, timeout: float) -> None:
        """Tell every helper to run its call, to finish within ``timeout`` seconds from now.

        The first call sets the deadline; a later one keeps it and tells the helpers an
        interrupted first call had not reached yet (a signal handler may run between any
        two steps of it).  Each call runs once.
        """
        if self._deadline is None:
            self._deadline = time.monotonic() + timeout
        for helper in self._helpers:
            if not helper.told:
                # Interrupted right after its release, the first call leaves it released.
                with contextlib.suppress(RuntimeError):
                    helper.go.release()
                helper.told = True

    def wait_for(self, name: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds more for the call ``name``; True once it has ended.

        For a call that must not be abandoned after all: past the deadline, the caller
        decides what to do with a call still running.  A call never begun counts as ended.
        """
        for helper in self._helpers:
            if helper.name != name or not helper.told or helper.finished:
                continue
            if not helper.done.acquire(timeout=max(0.0, timeout)):
                return False
            helper.done.release()
        return True

    def wait(self) -> list[str]:
        """Wait until every call begun has finished or the deadline passed.

        Returns the names of the calls still running.  Several waiters may wait, one after
        the other or nested (a signal handler interrupting a wait).
        """
        if self._deadline is None:
            return []
        unfinished = []
        for helper in self._helpers:
            if helper.finished:
                continue  # without touching the lock a waiter we interrupted may hold
            if helper.done.acquire(timeout=max(0.0, self._deadline - time.monotonic())):
                helper.done.release()  # leave it released for the next waiter
            else:
                unfinished.append(helper.name)
        return unfinished
