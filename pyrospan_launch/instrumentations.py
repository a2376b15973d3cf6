"""Find and load the OpenTelemetry instrumentations installed next to the app.

Instrumentations are the ``opentelemetry_instrumentor`` entry points that packages such as
``opentelemetry-instrumentation-flask`` declare.  This module loads them the way
``opentelemetry-instrument`` does (the distro's ``load_instrumentor``, the standard
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` switch, the version check against the
instrumented library), and tells ``--info`` which of them will load and why others won't.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pyrospan_launch import log

DISABLED_VARIABLE = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"


@dataclass(frozen=True)
class Instrumentation:
    """One installed instrumentation and what will happen to it."""

    name: str
    package: str
    loads: bool
    reason: str


def disabled_names(environ: Mapping[str, str]) -> set[str]:
    """Names listed in OTEL_PYTHON_DISABLED_INSTRUMENTATIONS (``*`` disables all)."""
    raw = environ.get(DISABLED_VARIABLE, "")
    return {name.strip() for name in raw.split(",") if name.strip()}


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
        else:
            found.append(Instrumentation(entry_point.name, package, True, "library installed"))
    return found


def load_all(distro: Any) -> list[str]:
    """Instrument every library that is installed and not disabled; returns their names.

    One broken instrumentation is skipped with a warning rather than stopping the rest.
    """
    disabled = disabled_names(os.environ)
    for entry_point in entry_points(group="opentelemetry_pre_instrument"):
        entry_point.load()()
    loaded: list[str] = []
    if "*" not in disabled:
        for entry_point in entry_points(group="opentelemetry_instrumentor"):
            if entry_point.name in disabled:
                log.debug(f"instrumentation {entry_point.name}: disabled by {DISABLED_VARIABLE}")
                continue
            conflict = _conflict(entry_point)
            if conflict is not None:
                log.debug(f"instrumentation {entry_point.name}: skipped, {conflict}")
                continue
            try:
                distro.load_instrumentor(entry_point, skip_dep_check=True)
            except Exception as exc:
                log.warning(
                    f"instrumentation {entry_point.name} failed and is skipped: "
                    f"{type(exc).__name__}: {exc}"
                )
                continue
            loaded.append(entry_point.name)
            log.debug(f"instrumentation {entry_point.name}: loaded")
    for entry_point in entry_points(group="opentelemetry_post_instrument"):
        entry_point.load()()
    return loaded
