"""The OpenTelemetry instrumentations installed next to the app, read from package metadata.

Instrumentations are the ``opentelemetry_instrumentor`` entry points that packages such as
``opentelemetry-instrumentation-flask`` declare.  This module says which are enabled
(``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``), which library each instruments and which
module imports should load each.  It loads nothing: ``--info`` reads it before exec, and
the agent's :mod:`pyrospan_launch.agent.instrumentations` loads what it lists.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, PackageNotFoundError, distribution, entry_points
from typing import Any

from pyrospan_launch.common import log
from pyrospan_launch.settings import reads

DISABLED_VARIABLE = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"


@dataclass(frozen=True)
class Instrumentation:
    """One installed instrumentation and what will happen to it."""

    name: str
    package: str
    loads: bool
    reason: str


def _package_of(entry_point: EntryPoint) -> Any:
    return getattr(entry_point, "dist", None)


def conflict(entry_point: EntryPoint) -> str | None:
    """Why the instrumented library is missing or of the wrong version, or None."""
    from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

    dist = _package_of(entry_point)
    if dist is None:
        return None
    conflict = get_dist_dependency_conflicts(dist)
    if conflict is None:
        return None
    # Newer releases word the conflict with the instrumentation's name; older ones only
    # have the plain text.
    format_message = getattr(conflict, "_format_message", None)
    if callable(format_message):
        return str(format_message(entry_point.name))
    return str(conflict)


def survey(environ: Mapping[str, str] | None = None) -> list[Instrumentation]:
    """Every installed instrumentation, with whether it will load here and why not."""
    environ = os.environ if environ is None else environ
    disabled = reads.disabled_instrumentations(environ)
    eager = reads.eager_instrumentation(environ)
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
        problem = conflict(entry_point)
        if problem is not None:
            found.append(Instrumentation(entry_point.name, package, False, problem))
            continue
        modules = trigger_modules(entry_point) or []
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
    disabled = reads.disabled_instrumentations(environ)
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
