"""The parsers of the settings registry: each turns a variable's raw text into its value.

A parser raises :class:`Invalid` (or ``ValueError``) for text it does not accept; the
registry turns that into the one line shown to users.  Both the launcher and every child
start by reading the registry, so json, re and urllib.parse are imported inside the
parsers that need them, which run only for a variable that is set (docs/design.md,
start-up imports).
"""

from __future__ import annotations


class Invalid(ValueError):
    """Raised by a parser for text it does not accept."""


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_bool(raw: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off), any case."""
    value = raw.lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise Invalid(raw)


def parse_positive_int(raw: str) -> int:
    """A whole number above zero."""
    import re

    if not re.fullmatch(r"\+?\d+", raw):
        raise Invalid(raw)
    value = int(raw)
    if value <= 0:
        raise Invalid(raw)
    return value


# pyroscope-io takes both as native integers; far beyond these they overflow (an
# OverflowError in the app's start-up), and well before that they make no sense.
MAX_SAMPLE_RATE = 10_000
MAX_UPLOAD_INTERVAL = 3600


def parse_sample_rate(raw: str) -> int:
    """Samples per second, from 1 to :data:`MAX_SAMPLE_RATE`."""
    value = parse_positive_int(raw)
    if value > MAX_SAMPLE_RATE:
        raise Invalid(raw)
    return value


_DURATION = r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h)?"
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _duration_seconds(raw: str) -> float:
    """Seconds from ``10s``, ``1m``, ``2000ms`` or a bare number (seconds)."""
    import re

    match = re.fullmatch(_DURATION, raw.lower())
    if match is None:
        raise Invalid(raw)
    return float(match["number"]) * _UNIT_SECONDS[match["unit"]]


def parse_interval(raw: str) -> int:
    """Whole seconds from ``10s``, ``1m``, ``2000ms`` or a bare number; at least one second.

    pyroscope-io takes the upload interval as a whole number of seconds.
    """
    seconds = _duration_seconds(raw)
    if not 1 <= seconds <= MAX_UPLOAD_INTERVAL or seconds != int(seconds):
        raise Invalid(raw)
    return int(seconds)


# The exit flush's deadline: long enough for a distant backend's TLS handshake and answer,
# short enough that a process told to stop (Kubernetes allows 30 s in all) still ends.
MIN_EXIT_TIMEOUT = 0.1
MAX_EXIT_TIMEOUT = 30.0


def parse_exit_timeout(raw: str) -> float:
    """Seconds from ``2``, ``2s`` or ``1500ms``, from 100 ms to 30 s."""
    seconds = _duration_seconds(raw)
    if not MIN_EXIT_TIMEOUT <= seconds <= MAX_EXIT_TIMEOUT:
        raise Invalid(raw)
    return seconds


def url_userinfo(raw: str) -> tuple[str, str, str, str] | None:
    """``scheme://userinfo@host...`` -> (scheme, userinfo, host, rest); None without userinfo.

    String work only: the launcher and every child read URLs at start-up, where
    ``urllib.parse`` costs milliseconds (docs/design.md, start-up imports).
    """
    scheme, sep, after = raw.partition("://")
    end = min((i for i in (after.find(c) for c in "/?#") if i >= 0), default=len(after))
    netloc, rest = after[:end], after[end:]
    if not sep or "@" not in netloc:
        return None
    userinfo, _, host = netloc.rpartition("@")
    return scheme, userinfo, host, rest


def url_shown(raw: str) -> str:
    """``raw`` as it may be printed: the password of a ``scheme://user:password@`` hidden."""
    parts = url_userinfo(raw)
    if parts is None:
        return raw
    scheme, userinfo, host, rest = parts
    user, colon, _ = userinfo.partition(":")
    hidden = f"{user}:<redacted>" if colon else user
    return f"{scheme}://{hidden}@{host}{rest}"


def parse_url(raw: str) -> str:
    """An http(s) URL with a host; a trailing slash is dropped."""
    from urllib.parse import urlsplit

    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid(raw)
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise Invalid(raw) from exc
    return raw.rstrip("/")


_LABEL_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


def parse_labels(raw: str) -> dict[str, str]:
    """``k=v,k2=v2``: names as Pyroscope takes them (letters, digits, ``_``); values non-empty."""
    import re

    labels: dict[str, str] = {}
    for item in raw.split(","):
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not re.fullmatch(_LABEL_NAME, name) or not value:
            raise Invalid(raw)
        labels[name] = value
    return labels


def parse_headers(raw: str) -> dict[str, str]:
    """A JSON object of strings (as Pyroscope's agents take it) or ``Name=value,Name2=value``."""
    import json
    import re

    if raw.startswith("{"):
        try:
            decoded = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise Invalid(raw) from exc
        if not isinstance(decoded, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in decoded.items()
        ):
            raise Invalid(raw)
        return decoded
    headers: dict[str, str] = {}
    for item in raw.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name):
            raise Invalid(raw)
        headers[name] = value.strip()
    return headers


def parse_name(raw: str) -> str:
    """Any non-empty text without control characters."""
    if any(ord(ch) < 32 for ch in raw):
        raise Invalid(raw)
    return raw


#: The bootstrap's log levels, quietest last (the log line module shows these).
LOG_LEVELS = ("debug", "info", "warning", "error")


def parse_log_level(raw: str) -> str:
    """One of ``debug``, ``info``, ``warning``, ``error``."""
    value = raw.lower()
    if value not in LOG_LEVELS:
        raise Invalid(raw)
    return value


SPAN_LABEL_METHODS = ("frames", "tags")


def parse_span_labels(raw: str) -> str:
    """How spans reach the samples: ``frames`` or ``tags``."""
    value = raw.lower()
    if value not in SPAN_LABEL_METHODS:
        raise Invalid(raw)
    return value


CPU_SAMPLERS = ("auto", "stack", "pyspy")


def parse_cpu_sampler(raw: str) -> str:
    """Which CPU sampler pyroscope-io runs: ``auto``, ``stack`` or ``pyspy``."""
    value = raw.lower().replace("-", "")
    if value not in CPU_SAMPLERS:
        raise Invalid(raw)
    return value


def parse_protocol(raw: str) -> str:
    """An OTLP protocol pyrospan-run can send: ``http/protobuf`` or ``grpc``."""
    if raw not in ("http/protobuf", "grpc"):
        raise Invalid(raw)
    return raw


def parse_resource_attributes(raw: str) -> dict[str, str]:
    """OpenTelemetry's ``key=value,key2=value2`` (values percent-encoded)."""
    from urllib.parse import unquote

    attributes: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise Invalid(raw)
        attributes[key.strip()] = unquote(value.strip())
    return attributes


def parse_protocol_installed(raw: str) -> str:
    """:func:`parse_protocol`, and grpc only when its exporter is installed."""
    value = parse_protocol(raw)
    if value == "grpc":
        from importlib.util import find_spec

        if find_spec("opentelemetry.exporter.otlp.proto.grpc") is None:
            raise Invalid(raw)
    return value


# OpenTelemetry's own rule for OTLP headers in the environment (its "liberal" parser): a
# header name, "=", and printable ASCII other than '"', ',', ';' and '\'.  A header
# that breaks it is dropped by the SDK with a warning that quotes it, secret and all.
_OTLP_HEADER = (
    r"[ \t]*[\x21\x23-\x27\x2a\x2b\x2d\x2e\x30-\x39\x41-\x5a\x5e-\x7a\x7c\x7e]+[ \t]*=[ \t]*"
    r"[\x20\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*[ \t]*"
)


def parse_otlp_headers(raw: str) -> str:
    """``Name=value,Name2=value`` as OpenTelemetry reads OTLP headers (values percent-encoded)."""
    import re

    for item in re.split(r"[ \t]*,[ \t]*", raw):
        if item and not re.fullmatch(_OTLP_HEADER, item.strip()):
            raise Invalid(raw)
    return raw


_BUILT_IN = {
    "opentelemetry_traces_exporter": ("otlp", "otlp_proto_http", "console", "none"),
    "opentelemetry_traces_sampler": (
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    ),
}


def _installed(group: str, name: str) -> bool:
    if name in _BUILT_IN[group]:
        return True
    from importlib.metadata import entry_points  # only for names beyond the built-in ones

    return any(ep.name == name for ep in entry_points(group=group))


def parse_traces_exporters(raw: str) -> str:
    """Comma-separated span exporter names, each built in or installed."""
    names = [name.strip() for name in raw.split(",")]
    if not all(name and _installed("opentelemetry_traces_exporter", name) for name in names):
        raise Invalid(raw)
    return raw


def parse_sampler(raw: str) -> str:
    """An OpenTelemetry sampler name, built in or installed."""
    if not _installed("opentelemetry_traces_sampler", raw):
        raise Invalid(raw)
    return raw


def parse_names(raw: str) -> frozenset[str]:
    """Comma-separated names; blanks around and between them are ignored."""
    return frozenset(name.strip() for name in raw.split(",") if name.strip())


def parse_text(raw: str) -> str:
    """Any text."""
    return raw
