"""Load the OpenTelemetry instrumentations installed next to the app.

This module loads them the way ``opentelemetry-instrument`` does (the distro's
``load_instrumentor``, the version check against the instrumented library), each when
the app first imports the library it instruments; :mod:`pyrospan_launch.common.installed`
says which are installed and enabled.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

from pyrospan_launch.agent import triggers
from pyrospan_launch.agent.import_hooks import ImportHooks, is_importing
from pyrospan_launch.agent.startup_warnings import StartupWarnings
from pyrospan_launch.common import installed, log
from pyrospan_launch.common.skipped import SkippedRecord


def install(
    distro: Any,
    hooks: ImportHooks,
    *,
    lazy: bool = True,
    plan: list[tuple[EntryPoint, list[str]]] | None = None,
    filters: StartupWarnings | None = None,
    skipped: SkippedRecord | None = None,
) -> list[str]:
    """Arrange for every installed, enabled instrumentation to load; returns their names.

    With ``lazy`` (the default), an instrumentation loads when the app first imports the
    library it instruments, just after that library's own module has run and before the
    importing code gets it, so ``from flask import Flask`` still gets the instrumented
    class.  Start-up then pays nothing for libraries the app does not use, and a library
    is instrumented in the app's own import context (Django's settings module is on
    sys.path by then, which it may not be while the interpreter starts).  Without
    ``lazy``, each loads now, as ``opentelemetry-instrument`` does.

    Each loads under ``filters``, the warning filters the interpreter started with (the
    app's own are put back afterwards), and one that cannot load is noted in ``skipped``
    for ``--info``.
    """
    loader = _Loader(distro, filters or StartupWarnings(), skipped)
    for entry_point in entry_points(group="opentelemetry_pre_instrument"):
        entry_point.load()()
    names: list[str] = []
    if plan is None:
        plan = installed.planned(os.environ, known=triggers.by_instrumentation())
    for entry_point, modules in plan:
        names.append(entry_point.name)
        if not lazy or not modules:
            loader.load(entry_point, "at start-up")
            continue
        _load_on_import(loader, entry_point, modules, hooks)
    for entry_point in entry_points(group="opentelemetry_post_instrument"):
        entry_point.load()()
    return names


def _load_on_import(
    loader: _Loader, entry_point: EntryPoint, modules: list[str], hooks: ImportHooks
) -> None:
    done = threading.Lock()
    loaded = False

    def load_once(when: str) -> None:
        nonlocal loaded
        with done:
            if loaded:
                return
            loaded = True
        loader.load(entry_point, when)
        # An instrumentation module that imported another library while it loaded held
        # that library's instrumentation back (below): its module is whole now.
        hooks.run_finished()

    def on_import(module: ModuleType) -> None:
        setup_function = _AFTER_SETUP.get(module.__name__)
        if setup_function is not None and _defer_until_setup(module, setup_function, load_once):
            return
        when = f"on import of {module.__name__}"
        home = entry_point.module
        if is_importing(sys.modules.get(home)):
            # The instrumentation's own module is importing this library (the httpx
            # instrumentation imports httpx2 to instrument both): what the entry point
            # names is not defined yet.  It loads once that module is whole.
            log.debug(f"instrumentation {entry_point.name}: waits for {home} to finish importing")
            hooks.when_done_importing(home, lambda _module: load_once(f"{when}, after {home}"))
            return
        load_once(when)

    for module in modules:
        hooks.when_imported(module, on_import)
    log.debug(f"instrumentation {entry_point.name}: waits for import of {', '.join(modules)}")


# Libraries whose instrumentation needs the app's own configuration, which the app sets
# up after importing the library: instrument right after that set-up function first
# returns.  Django: a project's wsgi.py imports django, then sets DJANGO_SETTINGS_MODULE,
# then calls get_wsgi_application() -> django.setup(); the Django instrumentation reads the
# settings (and configures empty ones when it finds none), so it must wait for setup()
# and still come before the handler loads its middleware, which setup() precedes.
_AFTER_SETUP = {"django": "setup"}


def _defer_until_setup(
    module: ModuleType, function_name: str, load_once: Callable[[str], None]
) -> bool:
    """Wrap ``module.function_name`` to load the instrumentation after its first call."""
    original = getattr(module, function_name, None)
    if not callable(original):
        return False

    @functools.wraps(original)
    def setup_then_instrument(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        setattr(module, function_name, original)  # once is enough: put it back
        load_once(f"after {module.__name__}.{function_name}()")
        return result

    setattr(module, function_name, setup_then_instrument)
    return True


class _Loader:
    """Loads one instrumentation at a time, under the start-up warning filters."""

    def __init__(
        self, distro: Any, filters: StartupWarnings, skipped: SkippedRecord | None
    ) -> None:
        self._distro = distro
        self._filters = filters
        self._skipped = skipped

    def load(self, entry_point: EntryPoint, when: str) -> None:
        """Load one instrumentation; a failure is reported and skipped, never raised."""
        try:
            with self._filters.applied():
                problem = installed.conflict(entry_point)
                if problem is not None:
                    log.info(f"instrumentation {entry_point.name}: skipped, {problem}")
                    self._note(entry_point, problem)
                    return
                self._distro.load_instrumentor(entry_point, skip_dep_check=True)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            log.warning(f"instrumentation {entry_point.name} failed and is skipped: {reason}")
            self._note(entry_point, reason)
            return
        log.debug(f"instrumentation {entry_point.name}: loaded {when}")

    def _note(self, entry_point: EntryPoint, reason: str) -> None:
        if self._skipped is not None:
            self._skipped.add(entry_point.name, reason)
