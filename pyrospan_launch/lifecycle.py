"""Process lifecycle: keep the profiler running in forked children.

pyroscope-io's sampler does not survive ``fork()``: a prefork server's workers (gunicorn,
uvicorn --workers, multiprocessing) would run unprofiled.  One hook, registered once with
``os.register_at_fork``, configures it again in every child with the same settings.  The
OpenTelemetry SDK restarts its own export threads after fork by itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from pyrospan_launch import log

_after_fork_hooks: list[Callable[[], None]] = []
_registered = False


def _run_after_fork_hooks() -> None:
    for hook in list(_after_fork_hooks):
        try:
            hook()
        except Exception as exc:
            # Never let our hook break the app's fork.
            log.warning(f"after fork in pid {os.getpid()}: {type(exc).__name__}: {exc}")


def after_fork_in_child(hook: Callable[[], None]) -> None:
    """Run ``hook`` in every child this process forks (exceptions are reported, not raised)."""
    global _registered
    _after_fork_hooks.append(hook)
    if not _registered:
        os.register_at_fork(after_in_child=_run_after_fork_hooks)
        _registered = True
