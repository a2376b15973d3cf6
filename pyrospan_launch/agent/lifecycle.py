"""Process lifecycle in one place: fork, exit and signals.

Fork: one set of hooks (before, after in the child), registered once with
``os.register_at_fork``.  pyroscope-io's sampler does not survive ``fork()``, so the
profiler registers a child hook that starts it again; the OpenTelemetry SDK restarts its
own export thread and refreshes its process-dependent resource by itself.

Exit: the last span batch and the last profile window are sent when the process ends,
all together within one deadline (:data:`EXIT_TIMEOUT` seconds, or ``PYROSPAN_EXIT_TIMEOUT``),
however the backend behaves (a backend
that refuses connections made the OpenTelemetry exporter retry for 7 s, one that never
answers held the process 10 s).  That flush runs once per process:

* at a normal exit, and after an uncaught KeyboardInterrupt (SIGINT), from ``atexit`` (the
  process then still dies of SIGINT, whatever the flush ran: :func:`_still_die_of_sigint`);
* on SIGTERM (``docker stop``) when the signal would otherwise kill the process on the
  spot: the handler flushes, puts the default action back and raises the signal again,
  so the process still dies of SIGTERM (on Python 3.14+, a
  :class:`~pyrospan_launch.agent.signal_watch.SignalWatch` wakes the main thread when
  Python would leave the handler pending).  A handler the app installs replaces it; the app
  then ends through its own code and ``atexit``;
* at the end of a forked pool worker (multiprocessing, celery), which leaves through
  ``os._exit`` and skips ``atexit``: :mod:`pyrospan_launch.agent.worker_exits` runs the flush.

Hooks never raise into the app: a failing hook is reported in one line.
"""

from __future__ import annotations

import atexit
import functools
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from pyrospan_launch.agent import bounded, signal_watch
from pyrospan_launch.agent.green import Green, patched
from pyrospan_launch.agent.signal_watch import SignalWatch
from pyrospan_launch.agent.spans.span_markers import hidden, hide
from pyrospan_launch.common import log

TYPE_CHECKING = False  # typing is not imported at start-up (docs/design.md)
if TYPE_CHECKING:
    from typing import Any

Hook = Callable[[], None]

# Seconds the exit flush may take in all by default (PYROSPAN_EXIT_TIMEOUT), so the process
# ends within 1 s of the app.
EXIT_TIMEOUT = 0.5


def _uncaught_keyboard_interrupt() -> bool:
    """True when a KeyboardInterrupt ended the program's main code, which Python printed.

    Python sets ``sys.last_exc`` (``last_value`` before 3.12) as it prints it.  An
    interactive console sets them too, for an interrupted command: its traceback starts
    in the console's own module, not in ``__main__`` (or runpy's, for ``-m``).
    """
    import sys

    last = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if not isinstance(last, KeyboardInterrupt) or last.__traceback__ is None:
        return False
    return last.__traceback__.tb_frame.f_globals.get("__name__") in ("__main__", "runpy")


def _still_die_of_sigint() -> None:
    """Make the process still die of SIGINT, as the uncaught KeyboardInterrupt asked.

    CPython ends such a program by SIGINT after finalizing, as a shell expects (status
    130), on a flag that every ``exec``/``eval`` of source text clears first and sets
    again when that code raises KeyboardInterrupt.  The flush may have run such code (a
    module that defines a namedtuple or a dataclass, imported by the profile relay for its
    first push), which left the status 1; code that raises KeyboardInterrupt sets it back.
    """
    import contextlib

    with contextlib.suppress(KeyboardInterrupt):
        exec("raise KeyboardInterrupt")


def _run(hooks: list[Hook], when: str) -> None:
    for hook in list(hooks):
        try:
            hook()
        except Exception as exc:
            # Never let our hook break the app's fork.
            log.warning(f"{when} in pid {os.getpid()}: {type(exc).__name__}: {exc}")


class Lifecycle:
    """One process's fork hooks and exit calls; the agent holds the one that is installed."""

    def __init__(self) -> None:
        self._before_fork: list[Hook] = []
        self._after_fork_in_child: list[Hook] = []
        self._after_fork_in_parent: list[Hook] = []
        self._exit_calls: list[bounded.Call] = []
        # Seconds the exit flush may take in all (the configuration sets it).
        self.exit_timeout = EXIT_TIMEOUT
        # Told which exit calls the flush gave up on, to say what that loses; not when
        # that loss was said before the flush (eventlet's SIGTERM, see _on_sigterm).
        self._abandoned_listeners: list[Callable[[list[str], float], None]] = []
        self._loss_said_already = False
        self._registered_at_fork = False
        # The process whose fork hooks ran last (this one, or a child they ran in).
        self._pid = os.getpid()
        self._exit_handling_installed = False
        # The exit calls' helper threads, waiting; each forked child starts its own.
        self._standby: bounded.Standby | None = None
        # signal.signal as it was before ours stood in for it (see _report_default_for).
        self._set_handler: Callable[..., object] | None = None
        # signal.getsignal as it was before ours stood in for it.
        self._get_handler: Callable[[int], object] | None = None
        # In a gevent or eventlet process the flush runs on a greenlet instead (green.py).
        self._green_flush_started = False
        # Set when the SIGTERM handler starts; the signal watch wakes the main thread until.
        self.sigterm_started = False
        self.signal_watch: SignalWatch | None = None

    def _register_at_fork(self) -> None:
        if self._registered_at_fork:
            return
        self._registered_at_fork = True
        os.register_at_fork(
            before=lambda: _run(self._before_fork, "before fork"),
            after_in_child=self._run_after_fork_in_child,
            after_in_parent=lambda: _run(self._after_fork_in_parent, "after fork in parent"),
        )

    def _run_after_fork_in_child(self) -> None:
        self._pid = os.getpid()
        _run(self._after_fork_in_child, "after fork")

    def forked_here(self) -> bool:
        """False in a child forked without CPython's after-fork step (uWSGI forks from C)."""
        return self._pid == os.getpid()

    def before_fork(self, hook: Hook) -> None:
        """Run ``hook`` just before this process forks (exceptions reported, not raised)."""
        self._before_fork.append(hook)
        self._register_at_fork()

    def after_fork_in_parent(self, hook: Hook) -> None:
        """Run ``hook`` in this process after each fork (exceptions reported, not raised)."""
        self._after_fork_in_parent.append(hook)
        self._register_at_fork()

    def after_fork_in_child(self, hook: Hook) -> None:
        """Run ``hook`` in every child this process forks (exceptions reported, not raised)."""
        self._after_fork_in_child.append(hook)
        self._register_at_fork()

    def on_exit(self, name: str, call: Callable[[], object]) -> None:
        """Have ``call`` send what is left when the process ends (see the module docstring).

        ``name`` says what it sends, in debug lines.  Calls run concurrently, each on a
        helper thread, and are abandoned when :attr:`exit_timeout` has passed.
        """
        self._exit_calls.append((name, call))
        if self._standby is not None:
            self._standby.add(name, call)
        if self._exit_handling_installed:
            # Registered after the exit handling (OpenTelemetry starts on first use): its
            # own exit handler, registered just now, would run first and wait without a
            # deadline.  atexit runs the last registered first, so register the flush again.
            atexit.unregister(self.flush_at_exit)
            atexit.register(self.flush_at_exit)

    def when_abandoned(self, listener: Callable[[list[str], float], None]) -> None:
        """Have ``listener`` told the exit calls the flush gave up on, and its deadline in s.

        It runs at exit, maybe inside a signal handler: it must not wait on a lock.
        Exceptions are reported in a debug line, not raised.
        """
        self._abandoned_listeners.append(listener)

    def flush_at_exit(self, *, on_threads: bool = False) -> None:
        """Run the exit calls once in this process, all within :attr:`exit_timeout` seconds.

        Called again while that flush runs (SIGTERM arriving during the at-exit flush, or
        a multiprocessing child terminated while it ends), it waits for the same calls up
        to the same deadline instead of starting over or giving up on them.
        """
        standby = self._standby
        if standby is None:
            return
        green = None if on_threads else patched()
        if standby.started:
            standby.begin(self.exit_timeout)  # tells the helpers the interrupted flush had not told
            standby.wait()
            return
        interrupted = _uncaught_keyboard_interrupt()
        if green is not None:
            self._flush_on_this_greenlet(green)
        else:
            started = time.monotonic()
            standby.begin(self.exit_timeout)
            self._report(standby.wait(), started)
        if interrupted:
            _still_die_of_sigint()

    def finish_exit_call(self, name: str, timeout: float) -> bool:
        """After :meth:`flush_at_exit`: wait up to ``timeout`` more seconds for ``name``.

        True when that call has ended (or never ran).  For a call whose abandoned helper
        must not outlive what the process does next.
        """
        standby = self._standby
        return standby is None or standby.wait_for(name, timeout)

    def _report(self, unfinished: list[str], started: float, how: str = "") -> None:
        took = f"{(time.monotonic() - started) * 1000:.0f} ms"
        if unfinished:
            # Info: what each loss means to the user is said by those who know whether it
            # was said already (a backend that is down is reported while it lasts).
            log.info(
                f"exit: gave up on {', '.join(unfinished)} after {took}: the backend did not "
                "answer in time; the process ends without them"
            )
            for listener in () if self._loss_said_already else self._abandoned_listeners:
                try:
                    listener(unfinished, self.exit_timeout)
                except Exception as exc:
                    log.debug(f"exit: {type(exc).__name__}: {exc}")
        else:
            names = ", ".join(name for name, _ in self._exit_calls)
            log.debug(f"exit: {names} sent in {took}{how}")

    def _flush_on_this_greenlet(self, green: Green) -> None:
        """The exit calls one after the other here, each stopped at the deadline by ``green``."""
        if self._green_flush_started:
            return  # SIGTERM during the at-exit flush: that flush goes on
        self._green_flush_started = True
        started = time.monotonic()
        deadline = started + self.exit_timeout
        unfinished = []
        for name, call in self._exit_calls:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                unfinished.append(name)
                continue
            try:
                with green.timeout(remaining):
                    call()
            except BaseException as exc:  # the library's Timeout is a BaseException
                unfinished.append(name)
                log.debug(f"exit: {name} failed: {type(exc).__name__}: {exc}")
        self._report(unfinished, started, f" on a {green.name} greenlet")

    def _start_standby(self) -> None:
        # Helper threads must exist before the exit: Python 3.12+ starts none while
        # finalizing.  A forked child has none of its parent's threads, so it starts its own.
        self._standby = bounded.Standby(self._exit_calls)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self.sigterm_started = True
        green = patched()
        if green is not None and not green.spawn_from_signal:
            # eventlet: the span exporter cannot finish in this flush, inside its loop or
            # out of it, and a line at start said so (spans/server_frames).
            self._loss_said_already = True
        if green is not None and green.in_loop():
            # gevent and eventlet run the handler inside their event loop, where nothing
            # may wait (agent/green.py).
            if green.spawn_from_signal:
                green.spawn(self._die_of, signum)
                return
            self._die_of(signum, on_threads=True)
            return
        self._die_of(signum)

    def _die_of(self, signum: int, *, on_threads: bool = False) -> None:
        self.flush_at_exit(on_threads=on_threads)
        # Die of the signal, as the process would have without pyrospan: its parent (a
        # shell, docker, a supervisor) sees the same status.
        _set_handler = self._set_handler or signal.signal
        _set_handler(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    def _install_sigterm_handler(self) -> None:
        if not hasattr(signal, "SIGTERM"):
            return
        if threading.current_thread() is not threading.main_thread():
            return  # signal.signal works only there; the bootstrap always runs there
        current = signal.getsignal(signal.SIGTERM)
        if current is not signal.SIG_DFL:
            # Ignored or handled by whoever started us: theirs to keep.
            log.debug(f"SIGTERM already set to {current!r}: left as it is")
            return
        handler = self._on_sigterm
        signal.signal(signal.SIGTERM, handler)
        # The real one: once _report_default_for stands in, signal.getsignal says SIG_DFL
        # for our handler, and the watch would never find the handler due.
        self._get_handler = signal.getsignal
        self._set_handler = _report_default_for(handler)
        log.debug("SIGTERM: the last data is sent before the default action kills the process")
        if signal_watch.NEEDED:
            watch = SignalWatch(signal.SIGTERM, self._sigterm_due)
            if watch.start():
                self.signal_watch = watch
                self.before_fork(watch.pause)
                self.after_fork_in_parent(watch.resume)
                self.after_fork_in_child(watch.restart_in_child)

    def _sigterm_due(self) -> bool:
        """True while SIGTERM's handler is this lifecycle's and has not started."""
        get_handler = self._get_handler or signal.getsignal
        return not self.sigterm_started and get_handler(signal.SIGTERM) == self._on_sigterm

    def install_exit_handling(self) -> None:
        """Flush at exit and on a fatal SIGTERM, within the deadline, here and in forks.

        Call it once the profiler and the SDK are set up: ``atexit`` runs the last
        registered first, so the flush then runs before their own exit handlers, which
        would wait for the backend without a deadline.
        """
        if self._exit_handling_installed:
            return
        self._exit_handling_installed = True
        self._start_standby()
        atexit.register(self.flush_at_exit)
        self._install_sigterm_handler()
        self.after_fork_in_child(self._start_standby)


def _report_default_for(handler: Callable[[int, FrameType | None], None]) -> Callable[..., object]:
    """Make ``signal`` report SIG_DFL where ``handler`` is installed for SIGTERM.

    ``handler`` acts as the default action does (the process dies of SIGTERM) after the
    exit flush, so the app is told what it would be told without us:
    ``signal.getsignal(SIGTERM)`` and the previous handler ``signal.signal`` returns are
    SIG_DFL, and setting SIG_DFL back (uvicorn restores what it found) puts ``handler``
    back.  Returns the original ``signal.signal``.
    """
    original_signal = signal.signal
    original_getsignal = signal.getsignal
    sigterm = signal.SIGTERM
    default = signal.SIG_DFL

    @functools.wraps(original_getsignal)
    def getsignal(signalnum: int, /) -> Any:
        try:
            current = original_getsignal(signalnum)
        except BaseException as exc:
            exc.__traceback__ = hide(exc.__traceback__)
            raise
        return default if current == handler else current

    @functools.wraps(original_signal)
    def signal_(signalnum: int, new: Any, /) -> Any:
        try:
            if new is default and signalnum == sigterm:
                new = handler
            previous = original_signal(signalnum, new)
        except BaseException as exc:
            exc.__traceback__ = hide(exc.__traceback__)
            raise
        return default if previous == handler else previous

    hidden(getsignal)
    hidden(signal_)
    setattr(signal, "getsignal", getsignal)  # noqa: B010
    setattr(signal, "signal", signal_)  # noqa: B010
    return original_signal
