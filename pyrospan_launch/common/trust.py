"""Which certificates each signal trusts, and the relay's TLS context that trusts them all.

* Profiles the relay forwards (every push, in either span-label mode): Python's OpenSSL
  reads ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``, else the system's store, and the relay also
  trusts the files the span exporter is told to trust (``OTEL_EXPORTER_OTLP_CERTIFICATE``,
  ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``), so any one of them serves both signals.
* Profiles that pyroscope-io pushes itself (only where the relay cannot start): its
  OpenSSL reads ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``, else the system's store.
* Spans (the OTLP/HTTP exporter, on ``requests``): ``REQUESTS_CA_BUNDLE``, else
  ``CURL_CA_BUNDLE``, else ``OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE``, else
  ``OTEL_EXPORTER_OTLP_CERTIFICATE``, else certifi's bundle.  The exporter sets its
  certificate on a requests ``Session``, and requests lets those two environment variables
  override a session's setting (psf/requests#3829), so a machine-wide
  ``REQUESTS_CA_BUNDLE`` hides OpenTelemetry's own variable: :func:`span_conflict` says so.
  It never reads ``SSL_CERT_FILE``, so the agent gives it that file as
  ``OTEL_EXPORTER_OTLP_CERTIFICATE`` when the user set only ``SSL_CERT_FILE``/``SSL_CERT_DIR``
  (:func:`span_certificate_default`).
"""

from __future__ import annotations

from collections.abc import Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl

OPENSSL_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR")
# In the order the span exporter lets them win.
SPAN_VARIABLES = (
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
)
# What the relay trusts on top of OpenSSL's defaults (the traces-only variable is the
# traces' own, not a trust for the profile server).
RELAY_EXTRA_VARIABLES = ("OTEL_EXPORTER_OTLP_CERTIFICATE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
ALL_VARIABLES = OPENSSL_VARIABLES + SPAN_VARIABLES


def _set(environ: Mapping[str, str], names: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(name, environ[name].strip()) for name in names if environ.get(name, "").strip()]


def span_certificate_default(environ: Mapping[str, str]) -> str | None:
    """The ``OTEL_EXPORTER_OTLP_CERTIFICATE`` to set so spans trust what OpenSSL is told to.

    None when the user chose what spans trust, or set neither OpenSSL variable.
    """
    if _set(environ, SPAN_VARIABLES):
        return None
    chosen = _set(environ, OPENSSL_VARIABLES)
    return chosen[0][1] if chosen else None


def span_conflict(environ: Mapping[str, str]) -> str | None:
    """One line when an OpenTelemetry certificate variable is hidden by requests' own."""
    chosen = _set(environ, SPAN_VARIABLES)
    if not chosen or chosen[0][0].startswith("OTEL_"):
        return None
    winner, file = chosen[0]
    hidden = [name for name, value in chosen[1:] if name.startswith("OTEL_") and value != file]
    if not hidden:
        return None
    return (
        f"{hidden[0]} is not used for spans: {winner} is set, and the OTLP exporter's "
        f"HTTP client (requests) lets it win; unset {winner} or point it at the same file"
    )


def profiles_trust(environ: Mapping[str, str], through_relay: bool) -> str:
    """What profile pushes trust, in words (``--info``)."""
    parts = [f"{name}={value}" for name, value in _set(environ, OPENSSL_VARIABLES)]
    if through_relay:
        parts += [f"{name}={value}" for name, value in _set(environ, RELAY_EXTRA_VARIABLES)]
    if not _set(environ, ("SSL_CERT_FILE",)):
        parts.insert(0, "the system's CA store")
    return " + ".join(parts)


def spans_trust(environ: Mapping[str, str]) -> str:
    """What the OTLP/HTTP span exporter trusts, in words (``--info``)."""
    chosen = _set(environ, SPAN_VARIABLES)
    if chosen:
        name, value = chosen[0]
        return f"{name}={value}"
    default = span_certificate_default(environ)
    if default is not None:
        source = _set(environ, OPENSSL_VARIABLES)[0][0]
        return f"{default} (from {source}, given to the exporter as OTEL_EXPORTER_OTLP_CERTIFICATE)"
    return "certifi's CA bundle (requests' default; not the system's store)"


def relay_context(environ: Mapping[str, str]) -> ssl.SSLContext:
    """The relay's TLS context: OpenSSL's defaults plus every file the span exporter trusts."""
    import os
    import ssl

    context = ssl.create_default_context()
    for _, value in _set(environ, RELAY_EXTRA_VARIABLES):
        if os.path.isdir(value):
            context.load_verify_locations(capath=value)
        elif os.path.isfile(value):
            context.load_verify_locations(cafile=value)
    return context
