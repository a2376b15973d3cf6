"""Single values the other layers read before, or without, a :class:`~.config.Config`.

Every read of a registered variable goes through the settings layer, so a variable's
name is written in the registry and here, never in the agent, the launcher or local mode.
A value that does not parse gives its default: :func:`.config.resolve` reports it.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyrospan_launch.settings.registry import read_quietly

#: OpenTelemetry's service-name variable, which the launcher and the agent also write.
SERVICE_NAME = "OTEL_SERVICE_NAME"


def service_name_set(environ: Mapping[str, str]) -> str:
    """OTEL_SERVICE_NAME as it is set (empty when unset), without parsing."""
    return environ.get(SERVICE_NAME, "")


def disabled_instrumentations(environ: Mapping[str, str]) -> frozenset[str]:
    """OTEL_PYTHON_DISABLED_INSTRUMENTATIONS: instrumentation names, ``*`` for all."""
    return frozenset(read_quietly("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", environ))


def eager_instrumentation(environ: Mapping[str, str]) -> bool:
    """PYROSPAN_EAGER_INSTRUMENTATION: load every instrumentation at start-up."""
    return bool(read_quietly("PYROSPAN_EAGER_INSTRUMENTATION", environ))


def local_requested(environ: Mapping[str, str]) -> bool:
    """PYROSPAN_LOCAL: local mode asked for through the environment."""
    return bool(read_quietly("PYROSPAN_LOCAL", environ))


def upload_interval_seconds(environ: Mapping[str, str]) -> float:
    """PYROSCOPE_UPLOAD_INTERVAL in seconds."""
    return float(read_quietly("PYROSCOPE_UPLOAD_INTERVAL", environ))


def basic_auth_variables_set(environ: Mapping[str, str]) -> bool:
    """PYROSCOPE_BASIC_AUTH_USER or _PASSWORD given: they win over a URL's credentials."""
    return bool(
        _text("PYROSCOPE_BASIC_AUTH_USER", environ)
        or _text("PYROSCOPE_BASIC_AUTH_PASSWORD", environ)
    )


def _text(name: str, environ: Mapping[str, str]) -> str:
    value = read_quietly(name, environ)
    return "" if value is None else str(value)


def traces_url(environ: Mapping[str, str]) -> str:
    """Where OTLP/HTTP traces will be sent, as the exporter computes it."""
    explicit = _text("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", environ)
    if explicit:
        return explicit
    return _text("OTEL_EXPORTER_OTLP_ENDPOINT", environ).rstrip("/") + "/v1/traces"


def traces_protocol(environ: Mapping[str, str]) -> str:
    """The OTLP protocol of traces: the traces variable, else the general one."""
    return _text("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", environ) or _text(
        "OTEL_EXPORTER_OTLP_PROTOCOL", environ
    )


def traces_exporter(environ: Mapping[str, str]) -> str:
    """OTEL_TRACES_EXPORTER as OpenTelemetry will read it."""
    return _text("OTEL_TRACES_EXPORTER", environ)


def traces_sampler(environ: Mapping[str, str]) -> str:
    """OTEL_TRACES_SAMPLER as OpenTelemetry will read it."""
    return _text("OTEL_TRACES_SAMPLER", environ)
