"""Start OpenTelemetry the way zero-code instrumentation does: distro, configurator, instrumentors.

The distro and configurator are the ones installed (``opentelemetry-distro`` by default, or
those named by ``OTEL_PYTHON_DISTRO`` / ``OTEL_PYTHON_CONFIGURATOR``), so every standard
``OTEL_*`` variable keeps its documented meaning.  pyrospan-run only changes defaults the
user has not set: OTLP over http/protobuf (the distro would pick gRPC, which is not
installed), and no metrics or logs exporters (Tempo and Pyroscope take neither, and an
exporter with nowhere to send would complain every minute).
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from typing import Any

from pyrospan_launch import instrumentations, log

DEFAULTS = {
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
}


def _pick(group: str, variable: str) -> Any:
    """The entry point of ``group`` named by ``variable``, or the first one when unset."""
    wanted = os.environ.get(variable) or None
    found = list(entry_points(group=group))
    for entry_point in found:
        if wanted is None or entry_point.name == wanted:
            return entry_point.load()
    if wanted is not None:
        installed = ", ".join(sorted(ep.name for ep in found)) or "none"
        raise LookupError(f"{variable}={wanted!r} is not installed (installed: {installed})")
    return None


def start(*, lazy: bool = True) -> list[str]:
    """Configure the SDK and arrange instrumentation; returns the instrumentations enabled."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)

    distro_class = _pick("opentelemetry_distro", "OTEL_PYTHON_DISTRO")
    if distro_class is None:
        from opentelemetry.instrumentation.distro import DefaultDistro  # type: ignore[attr-defined]

        distro_class = DefaultDistro
    distro = distro_class()
    distro.configure()
    log.debug(f"distro {type(distro).__name__} configured")

    configurator_class = _pick("opentelemetry_configurator", "OTEL_PYTHON_CONFIGURATOR")
    if configurator_class is not None:
        from opentelemetry.instrumentation.version import __version__

        configurator_class().configure(auto_instrumentation_version=__version__)
        log.debug(f"configurator {configurator_class.__name__} set up the SDK")
    else:
        log.debug("no OpenTelemetry configurator installed; the app must set up the SDK")

    return instrumentations.install(distro, lazy=lazy)


def sdk_tracer_provider() -> Any:
    """The global SDK TracerProvider, or None when the global one is not the SDK's."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    provider = trace.get_tracer_provider()
    return provider if isinstance(provider, TracerProvider) else None
