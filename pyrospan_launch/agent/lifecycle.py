"""Process lifecycle in one place: fork, exit and signals.

Fork: one set of hooks (before, after in the parent, after in the child), registered once
with ``os.register_at_fork``.  pyroscope-io's sampler does not survive ``fork()``, so the
profiler registers a child hook that starts it again; the OpenTelemetry SDK restarts its
own export thread and refreshes its process-dependent resource by itself.

Exit: the last span batch and the last profile window are sent when the process ends,
all together within :data:`EXIT_TIMEOUT` seconds, however the backend behaves (a backend
that refuses connections made the OpenTelemetry exporter retry for 7 s, one that never
answers held the process 10 s).  That flush runs once per process:

* at a normal exit, and after an uncaught KeyboardInterrupt (SIGINT), from ``atexit``;
* on SIGTERM (``docker stop``) when the signal would otherwise kill the process on the
  spot: the handler flushes, puts the default action back and raises the signal again,
  so the process still dies of SIGTERM.  A handler the app installs replaces it; the app
  then ends through its own code and ``atexit``;
* at the end of a forked pool worker (multiprocessing, celery), which leaves through
  ``os._exit`` and skips ``atexit``: :mod:`pyrospan_launch.agent.worker_exits` runs the flush.

Hooks never raise into the app: a failing hook is reported in one line.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from pyrospan_launch.agent import bounded
from pyrospan_launch.common import log

Hook = Callable[[], None]

# Seconds the exit flush may take in all, so the process ends within 1 s of the app.
EXIT_TIMEOUT = 0.5

_before_fork: list[Hook] = []
_after_fork_in_parent: list[Hook] = []
_after_fork_in_child: list[Hook] = []
_exit_calls: list[bounded.Call] = []
_registered_at_fork = False
_exit_handling_installed = False
# The exit calls' helper threads, waiting; each forked child starts its own.
_standby: bounded.Standby | None = None


def _run(hooks: list[Hook], when: str) -> None:
    for hook in list(hooks):
        try:
            hook()
        except Exception as exc:
            # Never let our hook break the app's fork.
            log.warning(f"{when} in pid {os.getpid()}: {type(exc).__name__}: {exc}")


def _register_at_fork() -> None:
    global _registered_at_fork
    if _registered_at_fork:
        return
    _registered_at_fork = True
    os.register_at_fork(
        before=lambda: _run(_before_fork, "before fork"),
        after_in_parent=lambda: _run(_after_fork_in_parent, "after fork"),
        after_in_child=lambda: _run(_after_fork_in_child, "after fork"),
    )


def before_fork(hook: Hook) -> None:
    """Run ``hook`` in this process just before it forks (exceptions reported, not raised)."""
    _before_fork.append(hook)
    _register_at_fork()


def after_fork_in_parent(hook: Hook) -> None:
    """Run ``hook`` in this process just after it forked (exceptions reported, not raised)."""
    _after_fork_in_parent.append(hook)
    _register_at_fork()


def after_fork_in_child(hook: Hook) -> None:
    """Run ``hook`` in every child this process forks (exceptions reported, not raised)."""
    _after_fork_in_child.append(hook)
    _register_at_fork()


def on_exit(name: str, call: Callable[[], object]) -> None:
    """Have ``call`` send what is left when the process ends (see the module docstring).

    ``name`` says what it sends, in debug lines.  Calls run concurrently, each on a
    helper thread, and are abandoned when :data:`EXIT_TIMEOUT` has passed.
    """
    _exit_calls.append((name, call))
    if _standby is not None:
        _standby.add(name, call)
    if _exit_handling_installed:
        # Registered after the exit handling (OpenTelemetry starts on first use): its own
        # exit handler, registered just now, would run first and wait without a deadline.
        # atexit runs the last registered first, so register the flush again.
        atexit.unregister(flush_at_exit)
        atexit.register(flush_at_exit)


def flush_at_exit() -> None:
    """Run the exit calls once in this process, all within :data:`EXIT_TIMEOUT` seconds.

    Called again while that flush runs (SIGTERM arriving during the at-exit flush, or a
    multiprocessing child terminated while it ends), it waits for the same calls up to
    the same deadline instead of starting over or giving up on them.
    """
    standby = _standby
    if standby is None:
        return
    if standby.started:
        standby.begin(EXIT_TIMEOUT)  # tells the helpers the interrupted flush had not told
        standby.wait()
        return
    started = time.monotonic()
    standby.begin(EXIT_TIMEOUT)
    unfinished = standby.wait()
    took = f"{(time.monotonic() - started) * 1000:.0f} ms"
    if unfinished:
        # Info, not warning: a backend that is down would repeat this at every exit.
        log.info(
            f"exit: gave up on {', '.join(unfinished)} after {took}: the backend did not "
            "answer in time; the process ends without them"
        )
    else:
        log.debug(f"exit: {', '.join(name for name, _ in _exit_calls)} sent in {took}")


def _start_standby() -> None:
    # Helper threads must exist before the exit: Python 3.12+ starts none while finalizing.
    # A forked child has none of its parent's threads, so it starts its own.
    global _standby
    _standby = bounded.Standby(_exit_calls)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    flush_at_exit()
    # Die of the signal, as the process would have without pyrospan: its parent (a shell,
    # docker, a supervisor) sees the same status.
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


def _install_sigterm_handler() -> None:
    if not hasattr(signal, "SIGTERM"):
        return
    if threading.current_thread() is not threading.main_thread():
        return  # signal.signal works only there; the bootstrap always runs there
    current = signal.getsignal(signal.SIGTERM)
    if current is not signal.SIG_DFL:
        # Ignored or handled by whoever started us: theirs to keep.
        log.debug(f"SIGTERM already set to {current!r}: left as it is")
        return
    signal.signal(signal.SIGTERM, _on_sigterm)
    log.debug("SIGTERM: the last data is sent before the default action kills the process")


def install_exit_handling() -> None:
    """Flush at exit and on a fatal SIGTERM, within the deadline, in this process and its forks.

    Call it once the profiler and the SDK are set up: ``atexit`` runs the last registered
    first, so the flush then runs before their own exit handlers, which would wait for
    the backend without a deadline.
    """
    global _exit_handling_installed
    if _exit_handling_installed:
        return
    _exit_handling_installed = True
    _start_standby()
    atexit.register(flush_at_exit)
    _install_sigterm_handler()
    after_fork_in_child(_start_standby)
