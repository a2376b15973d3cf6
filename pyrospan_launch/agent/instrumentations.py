"""Find and load the OpenTelemetry instrumentations installed next to the app.

Instrumentations are the ``opentelemetry_instrumentor`` entry points that packages such as
``opentelemetry-instrumentation-flask`` declare.  This module loads them the way
``opentelemetry-instrument`` does (the distro's ``load_instrumentor``, the standard
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` switch, the version check against the
instrumented library), and tells ``--info`` which of them will load and why others won't.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, PackageNotFoundError, distribution, entry_points
from types import ModuleType
from typing import Any

from pyrospan_launch.agent.triggers import DISABLED_VARIABLE, disabled_names
from pyrospan_launch.common import log


@dataclass(frozen=True)
class Instrumentation:
    """One installed instrumentation and what will happen to it."""

    name: str
    package: str
    loads: bool
    reason: str


def _package_of(entry_point: EntryPoint) -> Any:
    return getattr(entry_point, "dist", None)


def _conflict(entry_point: EntryPoint) -> str | None:
    """Why the instrumented library is missing or of the wrong version, or None."""
    from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

    dist = _package_of(entry_point)
    if dist is None:
        return None
    conflict = get_dist_dependency_conflicts(dist)
    if conflict is None:
        return None
    return str(conflict._format_message(entry_point.name))


def survey(environ: Mapping[str, str] | None = None) -> list[Instrumentation]:
    """Every installed instrumentation, with whether it will load here and why not."""
    environ = os.environ if environ is None else environ
    disabled = disabled_names(environ)
    found: list[Instrumentation] = []
    for entry_point in sorted(
        entry_points(group="opentelemetry_instrumentor"), key=lambda ep: ep.name
    ):
        dist = _package_of(entry_point)
        package = f"{dist.metadata['Name']} {dist.version}" if dist is not None else "?"
        if "*" in disabled or entry_point.name in disabled:
            found.append(
                Instrumentation(entry_point.name, package, False, f"listed in {DISABLED_VARIABLE}")
            )
            continue
        conflict = _conflict(entry_point)
        if conflict is not None:
            found.append(Instrumentation(entry_point.name, package, False, conflict))
            continue
        modules = trigger_modules(entry_point) or []
        eager = environ.get("PYROSPAN_EAGER_INSTRUMENTATION", "").lower() in (
            "true",
            "1",
            "yes",
            "on",
        )
        when = (
            f"when the app imports {' or '.join(modules)}"
            if modules and not eager
            else "at start-up"
        )
        found.append(Instrumentation(entry_point.name, package, True, when))
    return found


_REQUIREMENT_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _instrumented_distributions(entry_point: EntryPoint) -> list[str]:
    """Names of the libraries an instrumentation instruments (its ``instruments`` extra)."""
    dist = _package_of(entry_point)
    names: list[str] = []
    for requirement in (dist.requires or []) if dist is not None else []:
        if "instruments" not in requirement.partition(";")[2]:
            continue
        match = _REQUIREMENT_NAME.match(requirement)
        if match:
            names.append(match.group(1))
    return names


def import_names(distribution_name: str) -> list[str] | None:
    """Top-level modules of an installed distribution; None when it is not installed."""
    try:
        dist = distribution(distribution_name)
    except PackageNotFoundError:
        return None
    top_level = dist.read_text("top_level.txt")
    if top_level:
        return top_level.split()
    names = set()
    for file in dist.files or []:
        parts = file.parts
        if len(parts) == 2 and parts[1] == "__init__.py":
            names.add(parts[0])
        elif len(parts) == 1 and parts[0].endswith(".py"):
            names.add(parts[0][:-3])
    return sorted(names) or [distribution_name.replace("-", "_").lower()]


# Standard-library instrumentations whose module is not the one named after them: urllib's
# patches urllib.request, while plain ``urllib`` (urllib.parse) is imported by nearly
# everything at start-up.
_STDLIB_MODULE_PATCHED = {"urllib": "urllib.request"}


def planned(
    environ: Mapping[str, str], known: Mapping[str, list[str]] | None = None
) -> list[tuple[EntryPoint, list[str]]]:
    """Installed, enabled instrumentations with the modules whose import loads each.

    ``known`` maps instrumentation names to their trigger modules when they are already
    known (the bootstrap's cache), sparing a read of each instrumented package's files.
    """
    disabled = disabled_names(environ)
    if "*" in disabled:
        return []
    found = []
    for entry_point in entry_points(group="opentelemetry_instrumentor"):
        if entry_point.name in disabled:
            log.debug(f"instrumentation {entry_point.name}: disabled by {DISABLED_VARIABLE}")
            continue
        modules = (
            known[entry_point.name]
            if known is not None and entry_point.name in known
            else trigger_modules(entry_point)
        )
        if modules is None:
            log.debug(f"instrumentation {entry_point.name}: library not installed")
            continue
        found.append((entry_point, modules))
    return found


def trigger_modules(entry_point: EntryPoint) -> list[str] | None:
    """Modules whose first import should load this instrumentation.

    ``[]`` means load it now (nothing to wait for); None means the library it instruments
    is not installed, so it never loads.
    """
    libraries = _instrumented_distributions(entry_point)
    if not libraries:
        # Standard-library instrumentations (urllib, sqlite3, logging, ...) carry no
        # requirement; their entry point is named after the module they patch.
        name = entry_point.name
        if name in _STDLIB_MODULE_PATCHED:
            return [_STDLIB_MODULE_PATCHED[name]]
        return [name] if name in sys.stdlib_module_names else []
    modules: list[str] = []
    for library in libraries:
        modules += import_names(library) or []
    return modules or None


def install(
    distro: Any,
    *,
    lazy: bool = True,
    plan: list[tuple[EntryPoint, list[str]]] | None = None,
) -> list[str]:
    """Arrange for every installed, enabled instrumentation to load; returns their names.

    With ``lazy`` (the default), an instrumentation loads when the app first imports the
    library it instruments, just after that library's own module has run and before the
    importing code gets it, so ``from flask import Flask`` still gets the instrumented
    class.  Start-up then pays nothing for libraries the app does not use, and a library
    is instrumented in the app's own import context (Django's settings module is on
    sys.path by then, which it may not be while the interpreter starts).  Without
    ``lazy``, each loads now, as ``opentelemetry-instrument`` does.
    """
    for entry_point in entry_points(group="opentelemetry_pre_instrument"):
        entry_point.load()()
    names: list[str] = []
    if plan is None:
        from pyrospan_launch.agent import triggers

        plan = planned(os.environ, known=triggers.by_instrumentation())
    for entry_point, modules in plan:
        names.append(entry_point.name)
        if not lazy or not modules:
            _load(distro, entry_point, "at start-up")
            continue
        _load_on_import(distro, entry_point, modules)
    for entry_point in entry_points(group="opentelemetry_post_instrument"):
        entry_point.load()()
    return names


def _load_on_import(distro: Any, entry_point: EntryPoint, modules: list[str]) -> None:
    from pyrospan_launch.agent.import_hooks import when_imported

    done = threading.Lock()
    loaded = False

    def load_once(when: str) -> None:
        nonlocal loaded
        with done:
            if loaded:
                return
            loaded = True
        _load(distro, entry_point, when)

    def on_import(module: ModuleType) -> None:
        setup_function = _AFTER_SETUP.get(module.__name__)
        if setup_function is not None and _defer_until_setup(module, setup_function, load_once):
            return
        load_once(f"on import of {module.__name__}")

    for module in modules:
        when_imported(module, on_import)
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


def _load(distro: Any, entry_point: EntryPoint, when: str) -> None:
    """Load one instrumentation; a failure is reported and skipped, never raised."""
    try:
        conflict = _conflict(entry_point)
        if conflict is not None:
            log.info(f"instrumentation {entry_point.name}: skipped, {conflict}")
            return
        distro.load_instrumentor(entry_point, skip_dep_check=True)
    except Exception as exc:
        log.warning(
            f"instrumentation {entry_point.name} failed and is skipped: {type(exc).__name__}: {exc}"
        )
        return
    log.debug(f"instrumentation {entry_point.name}: loaded {when}")
