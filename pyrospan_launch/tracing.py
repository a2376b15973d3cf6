"""Start OpenTelemetry the way zero-code instrumentation does: distro, configurator, instrumentors.

The distro and configurator are the ones installed (``opentelemetry-distro`` by default, or
those named by ``OTEL_PYTHON_DISTRO`` / ``OTEL_PYTHON_CONFIGURATOR``), so every standard
``OTEL_*`` variable keeps its documented meaning.  pyrospan-run only changes defaults the
user has not set: OTLP over http/protobuf (the distro would pick gRPC, which is not
installed), no metrics or logs exporters (Tempo and Pyroscope take neither, and an
exporter with nowhere to send would complain every minute), and the ``process`` resource
detector, so that the spans of each process (each worker) carry its ``process.pid``.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import entry_points
from typing import Any

from pyrospan_launch import instrumentations, lifecycle, log

# The opentelemetry_context entry point of pyrospan_launch.span_context (see pyproject).
CONTEXT_ENTRY_POINT = "pyrospan_contextvars_context"

DEFAULTS = {
    # process.pid and friends on the resource; the SDK detects them again in every forked
    # worker, so each worker's spans carry its own pid (the profiler's `pid` label).
    "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "process",
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


def _select_label_switching_context() -> bool:
    """Make OpenTelemetry use pyrospan's runtime context; False if it cannot.

    The variable is set only while ``opentelemetry.context`` first loads (it reads it
    then), so that child processes of other interpreters never see a context name they
    cannot load.
    """
    if os.environ.get("OTEL_PYTHON_CONTEXT"):
        log.info(
            f"OTEL_PYTHON_CONTEXT={os.environ['OTEL_PYTHON_CONTEXT']} is the app's choice: "
            "span labels follow span start and end (asyncio and thread pools not attributed)"
        )
        return _label_switching_context_active()
    if "opentelemetry.context" in sys.modules:
        log.info("OpenTelemetry was loaded before the bootstrap: span labels follow span start")
        return _label_switching_context_active()
    os.environ["OTEL_PYTHON_CONTEXT"] = CONTEXT_ENTRY_POINT
    try:
        import opentelemetry.context  # noqa: F401 - loads the runtime context now
    finally:
        del os.environ["OTEL_PYTHON_CONTEXT"]
    return _label_switching_context_active()


def _label_switching_context_active() -> bool:
    import opentelemetry.context as otel_context

    from pyrospan_launch.span_context import LabelSwitchingRuntimeContext

    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    return isinstance(runtime, LabelSwitchingRuntimeContext)


def start(*, lazy: bool = True, label_switching: bool = False) -> tuple[list[str], bool]:
    """Configure the SDK and arrange instrumentation.

    Returns the instrumentations enabled, and whether pyrospan's label-switching runtime
    context is in use (asked for with ``label_switching``).
    """
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    switching = _select_label_switching_context() if label_switching else False

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

    # Sends the last span batch; the SDK's own exit handler waits up to 30 s for it.
    lifecycle.on_exit("spans", _shutdown_tracer_provider)
    return instrumentations.install(distro, lazy=lazy), switching


def sdk_tracer_provider() -> Any:
    """The global SDK TracerProvider, or None when the global one is not the SDK's."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    provider = trace.get_tracer_provider()
    return provider if isinstance(provider, TracerProvider) else None


def _shutdown_tracer_provider() -> None:
    provider = sdk_tracer_provider()
    if provider is not None:
        provider.shutdown()
