"""uWSGI workers: run the fork hooks that uWSGI, forking from C, does not run.

uWSGI starts Python (and so this bootstrap) in its master, loads the app there unless
``--lazy-apps``, and forks its workers with the C library's ``fork()``.  CPython's "after
fork" step (``PyOS_AfterFork_Child``) then runs only with ``--py-call-osafterfork`` or
``--py-call-uwsgi-fork-hooks``, so by default nothing registered with
``os.register_at_fork`` runs in a worker: pyroscope-io's sampler, the relay, the
OpenTelemetry export thread and the exit helpers stay dead there, and the worker's spans
keep the master's ``process.pid``.

What uWSGI does call in each new worker is the ``post_fork_hook`` of its ``uwsgi``
module (what ``uwsgidecorators.postfork`` builds on).  :class:`UwsgiWorkers` puts one
there in the master; in a worker it runs CPython's own after-fork step when uWSGI did not
(what ``--py-call-osafterfork`` does, at the same place), so every at-fork hook of the
process runs as after ``os.fork()``: pyrospan's, the SDK's, threading's.  Then it calls
the hook the app set, if any (``uwsgidecorators`` sets its chain there on import).

The ``uwsgi`` module does not exist yet while the bootstrap runs (uWSGI adds it to
``sys.modules`` later, before loading the app) except on Python 3.12+, where it can be
imported at once.  Before 3.12 an empty module takes its place in ``sys.modules``; uWSGI
finds it there and fills it.

With ``--py-call-uwsgi-fork-hooks`` uWSGI forks as ``os.fork()`` does, holding the GIL
across the fork, and runs the hooks itself; the launcher sets it (as the variable
``UWSGI_PY_CALL_UWSGI_FORK_HOOKS``) when it starts uWSGI.  Without it the GIL is released
while the master forks: a worker forked while another thread of the master (the relay,
the span exporter) runs Python waits for that thread for ever, and one line says which
flag to add.  uWSGI before 2.0.27 runs Python without threads unless
``--enable-threads`` or ``--threads`` is given: the relay and the span exporter, both
threads, would never run between requests; one line says which flag to add.
"""

from __future__ import annotations

import os
import sys
import types

from pyrospan_launch.agent.lifecycle import Lifecycle
from pyrospan_launch.common import log, uwsgi_options

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

# uWSGI runs Python with threads by default from this release on.
THREADS_BY_DEFAULT = (2, 0, 27)
HOOK = "post_fork_hook"
FORK_HOOKS_OPTION = uwsgi_options.FORK_HOOKS


def in_uwsgi(executable: str | None = None) -> bool:
    """True in a process whose program is uWSGI (its master, or a worker it forked)."""
    if executable is None:
        try:
            executable = os.readlink("/proc/self/exe")
        except OSError:
            executable = sys.executable or ""
    return "uwsgi" in os.path.basename(executable).lower()


def threads_disabled(module: Any) -> bool:
    """True when this uWSGI runs Python without threads (before 2.0.27, no thread flag)."""
    options = getattr(module, "opt", None) or {}
    if _truthy(options.get("enable-threads")) or _truthy(options.get("threads")):
        return False
    version = getattr(module, "version_info", None)
    if not version:
        return False
    return tuple(version[:3]) < THREADS_BY_DEFAULT


def _truthy(value: object) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return str(value).strip().lower() not in ("", "0", "false", "off", "no")


def run_cpython_after_fork() -> None:
    """CPython's after-fork step in this child, as ``os.fork()`` (and uWSGI's flag) run it.

    ``os.fork()`` takes the import lock before it forks (``PyOS_BeforeFork``) and the
    child's step gives it back: from Python 3.13, whose import lock is a recursive mutex,
    it unlocks it, and unlocking one that is not locked is a fatal error (the worker
    aborts, uWSGI respawns it, and so on for ever).  So the lock is taken here first, as
    the fork would have held it; up to 3.12 the step makes a new lock, taken or not.
    Unless it is held already: a thread of the master held it as uWSGI forked (that
    thread is gone here; taking it would wait for ever).  The step then hands it over.
    """
    import _imp
    import ctypes

    if not _imp.lock_held():
        _imp.acquire_lock()
    after_fork = getattr(ctypes.pythonapi, "PyOS_AfterFork_Child", None)
    if after_fork is None:  # pragma: no cover - Python 3.7+ always has it
        after_fork = ctypes.pythonapi.PyOS_AfterFork
    after_fork.restype = None
    after_fork()


class _PostForkChain:
    """uWSGI's ``post_fork_hook``: pyrospan's step first, then the one the app set."""

    def __init__(self, step: Callable[[], None]) -> None:
        self.step = step
        self.app_hook: Callable[[], object] | None = None

    def __call__(self) -> None:
        try:
            self.step()
        except Exception as exc:  # never break the worker's start over profiling
            log.warning(f"uWSGI worker {os.getpid()}: {type(exc).__name__}: {exc}")
        if self.app_hook is not None:
            self.app_hook()


class _UwsgiModule(types.ModuleType):
    """The ``uwsgi`` module, keeping pyrospan's hook first when the app sets its own."""

    def __setattr__(self, name: str, value: Any) -> None:
        chain = self.__dict__.get(HOOK)
        if name == HOOK and isinstance(chain, _PostForkChain) and value is not chain:
            chain.app_hook = value
            return
        super().__setattr__(name, value)


class UwsgiWorkers:
    """Makes each uWSGI worker start what a forked child of this process must start."""

    def __init__(self, lifecycle: Lifecycle, import_module: Callable[[str], Any] | None = None):
        self._lifecycle = lifecycle
        self._import = import_module or _import_module
        self.module: Any = None
        self._warned = False

    def install(self) -> bool:
        """Set uWSGI's post-fork hook in this (master) process; False when not in uWSGI."""
        try:
            module = self._import("uwsgi")
        except ImportError:
            # Before Python 3.12 uWSGI adds its module to sys.modules after start-up; it
            # fills the one it finds there.
            module = types.ModuleType("uwsgi")
            sys.modules["uwsgi"] = module
        existing = module.__dict__.get(HOOK)
        chain = _PostForkChain(self._in_worker)
        if isinstance(existing, _PostForkChain):
            return True
        if existing is not None:
            chain.app_hook = existing
        if type(module) is types.ModuleType:
            module.__class__ = _UwsgiModule
        module.__dict__[HOOK] = chain
        self.module = module
        log.debug("uWSGI: its workers run the fork hooks through uwsgi.post_fork_hook")
        return True

    def _in_worker(self) -> None:
        if not self._lifecycle.forked_here():
            # uWSGI forked from C without CPython's after-fork step: run it, and with it
            # every hook registered with os.register_at_fork (pyrospan's among them).
            run_cpython_after_fork()
            log.debug(f"uWSGI worker {os.getpid()}: fork hooks run")
        module = self.module
        if module is None or self._warned:
            return
        self._warned = True
        if getattr(module, "worker_id", lambda: 1)() not in (0, 1):
            return  # one line per start, from the first worker, not one per worker
        if getattr(module, "mule_id", lambda: 0)() or _truthy(
            getattr(module, "i_am_the_spooler", lambda: 0)()
        ):
            return  # a mule or the spooler (worker 0): the first worker says it
        if threads_disabled(module):
            log.warning(
                "uWSGI runs Python without threads, so the relay and the span exporter "
                "(threads) cannot send span profiles from its workers; add --enable-threads"
            )
        elif not _truthy((getattr(module, "opt", None) or {}).get(FORK_HOOKS_OPTION)):
            log.warning(_without_fork_hooks(getattr(module, "opt", None) or {}))
        elif runs_mules(getattr(module, "opt", None) or {}):
            # Set by the user, or by the launcher where it saw no mule (an included file).
            log.warning(
                "uWSGI 2.0 crashes its mules under --py-call-uwsgi-fork-hooks (it forks them "
                "without the GIL), with or without pyrospan-run; set "
                f"{uwsgi_options.FORK_HOOKS_VARIABLE}=false and drop the flag to keep them"
            )


def runs_mules(options: Mapping[str, object]) -> bool:
    """Whether uWSGI's options (``uwsgi.opt``) start mules."""
    # A mule given without a script shows as an empty value.
    return any(
        _truthy(options.get(name)) or options.get(name) == b"" for name in uwsgi_options.MULES
    )


def _without_fork_hooks(options: Mapping[str, object]) -> str:
    """The line for workers forked without Python's fork hooks, and what to change."""
    if runs_mules(options):
        # The flag would crash the mules (uWSGI forks them without the GIL under it).
        return (
            "uWSGI forks its workers without Python's fork hooks, as its mules crash under "
            "--py-call-uwsgi-fork-hooks (uWSGI 2.0): a worker or mule forked while another "
            "thread of the master runs Python hangs; to close that race, move the mules' work "
            "to a spooler (which the flag spares) and add the flag"
        )
    return (
        "uWSGI forks its workers without Python's fork hooks: a worker forked while "
        "another thread of the master runs Python hangs; add "
        "--py-call-uwsgi-fork-hooks (pyrospan-run adds it when it starts uwsgi itself)"
    )


def _import_module(name: str) -> Any:
    import importlib

    return importlib.import_module(name)
