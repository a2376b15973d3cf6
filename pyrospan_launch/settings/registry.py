"""The one registry of every environment variable pyrospan-run reads.

Each variable is declared once with its default, its parser, the accepted form (used
verbatim in error lines) and a one-line doc.  ``--info`` and the README table are made
from this list, and the launcher and the bootstrap parse through it, so a value means
the same thing everywhere.

OpenTelemetry's own ``OTEL_*`` variables are read by the OpenTelemetry SDK itself; the
ones listed here are those pyrospan-run also looks at (to derive the profile identity,
check a value before the app starts, or redact a secret).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping

from pyrospan_launch.settings.parsers import (
    MAX_SAMPLE_RATE,
    MAX_UPLOAD_INTERVAL,
    Invalid,
    parse_bool,
    parse_cpu_sampler,
    parse_exit_timeout,
    parse_headers,
    parse_interval,
    parse_labels,
    parse_log_level,
    parse_name,
    parse_names,
    parse_otlp_headers,
    parse_protocol_installed,
    parse_resource_attributes,
    parse_sample_rate,
    parse_sampler,
    parse_span_labels,
    parse_text,
    parse_traces_exporters,
    parse_url,
    url_shown,
    url_userinfo,
)

# Both the launcher and every child start by reading this registry: typing is for type
# checkers only (docs/design.md, start-up imports).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple


class SettingError(ValueError):
    """A variable whose value does not parse; ``str()`` is the one line shown to users."""

    def __init__(self, setting: Setting, raw: str) -> None:
        shown = "<redacted>" if setting.secret else repr(url_shown(raw))
        super().__init__(f"{setting.name}={shown}: expected {setting.expected}")
        self.setting = setting


if TYPE_CHECKING:

    class _SettingFields(NamedTuple):
        name: str
        group: str
        parse: Callable[[str], Any]
        default: Any
        expected: str
        doc: str
        secret: bool = False
        option: str = ""
        field: str = ""
        metavar: str = ""
        option_help: str = ""

else:
    # What typing.NamedTuple would build from the fields above, without importing typing.
    _SettingFields = namedtuple(
        "_SettingFields",
        "name group parse default expected doc secret option field metavar option_help",
        defaults=(False, "", "", "", ""),
    )


class Setting(_SettingFields):
    """One environment variable: how to read it and what it is for.

    ``option`` is the launcher's command-line option that sets it, if any: a value option
    passes its value, a flag sets ``true`` (``--no-...`` flags set ``false``).  The
    launcher builds the option from ``option``, ``metavar`` (none: a flag) and
    ``option_help``.  ``field`` is the :class:`~pyrospan_launch.settings.config.Config`
    field the value fills (``profiler.NAME``: a ``ProfilerConfig`` field); empty for the
    variables only OpenTelemetry reads, which pyrospan-run checks but keeps no value of.
    """

    __slots__ = ()

    def read(self, environ: Mapping[str, str]) -> Any:
        """The parsed value from ``environ``, or the default when unset or empty."""
        raw = environ.get(self.name)
        if raw is None or raw.strip() == "":
            return self.default
        try:
            return self.parse(raw.strip())
        except (Invalid, ValueError, OverflowError) as exc:
            raise SettingError(self, raw) from exc

    def shown(self, environ: Mapping[str, str]) -> str:
        """The value as ``--info`` may print it: secrets are never shown."""
        raw = environ.get(self.name)
        if raw is None or raw == "":
            return f"(unset, default {self.default_text()})"
        if self.secret:
            return "<redacted>"
        return url_shown(raw)

    def default_text(self) -> str:
        """The default as a user would write it."""
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        if self.default is None:
            return "none"
        if isinstance(self.default, frozenset):
            return ",".join(sorted(self.default)) or "none"
        if isinstance(self.default, dict):
            return ",".join(f"{k}={v}" for k, v in self.default.items()) or "empty"
        return str(self.default)


# --- the registry ----------------------------------------------------------------------

LAUNCHER = "pyrospan-run"
PROFILING = "profiling (Pyroscope)"
TRACING = "tracing (OpenTelemetry)"

_ON_OFF = "true or false"

ALL: tuple[Setting, ...] = (
    Setting(
        "PYROSPAN_PROFILING",
        LAUNCHER,
        parse_bool,
        True,
        _ON_OFF,
        "Start the Pyroscope CPU profiler and link root spans to its samples.",
        option="--no-profiling",
        field="profiling",
        option_help="Do not profile",
    ),
    Setting(
        "PYROSPAN_TRACING",
        LAUNCHER,
        parse_bool,
        True,
        _ON_OFF,
        "Start OpenTelemetry auto-instrumentation.",
        option="--no-tracing",
        field="tracing",
        option_help="Do not trace",
    ),
    Setting(
        "PYROSPAN_EAGER_INSTRUMENTATION",
        LAUNCHER,
        parse_bool,
        False,
        _ON_OFF,
        "Load every instrumentation at start-up, as opentelemetry-instrument does, instead "
        "of when the app first imports the library.",
        field="eager_instrumentation",
    ),
    Setting(
        "PYROSPAN_SPAN_NAME_LABEL",
        LAUNCHER,
        parse_bool,
        True,
        _ON_OFF,
        "Label span-profile samples with span_name as well as span_id.",
        field="span_name_label",
    ),
    Setting(
        "PYROSPAN_TRACE_ID_LABEL",
        LAUNCHER,
        parse_bool,
        False,
        _ON_OFF,
        "Also label samples with trace_id (32 hex). Pyroscope 2.1+ keeps it per sample; older "
        "servers make it a high-cardinality series label, so leave it off for them.",
        field="trace_id_label",
    ),
    Setting(
        "PYROSPAN_SPAN_LABELS",
        LAUNCHER,
        parse_span_labels,
        "frames",
        "frames or tags",
        "How root spans reach the samples: frames runs each span's work inside a marker frame "
        "that the profiler reads with the stack (exact at any step length; an in-process relay "
        "turns it into labels); tags sets thread tags, read up to 1 ms late.",
        field="span_labels",
    ),
    Setting(
        "PYROSPAN_SAMPLER",
        LAUNCHER,
        parse_cpu_sampler,
        "auto",
        "auto, stack or pyspy",
        "pyroscope-io's CPU sampler. stack reads each thread's stack while the thread is stopped "
        "by its own CPU timer (CPython 3.12+): exact at any stack depth, and CPU counted as CPU "
        "on a busy host; pyspy reads stacks from outside, as before. auto takes stack where it "
        "can run and py-spy where it cannot, and says which in --info and the debug log.",
        field="sampler",
    ),
    Setting(
        "PYROSPAN_EXIT_TIMEOUT",
        LAUNCHER,
        parse_exit_timeout,
        0.5,
        "a duration from 100ms to 30s, such as 2s or 1500ms",
        "How long an ending process waits for the backends to take its last spans and profile "
        "window; what is still unsent then is lost, and said. Raise it for short jobs that "
        "send to a distant backend: each process ends up to that much later.",
        field="exit_timeout",
    ),
    Setting(
        "PYROSPAN_STRICT",
        LAUNCHER,
        parse_bool,
        False,
        _ON_OFF,
        "Exit with status 3 before the app runs if any part fails to start.",
        option="--strict",
        field="strict",
        option_help="Exit with status 3 instead of running with a part off",
    ),
    Setting(
        "PYROSPAN_LOG_LEVEL",
        LAUNCHER,
        parse_log_level,
        "warning",
        "one of debug, info, warning, error",
        "How much the bootstrap says on stderr; debug shows every step with its PID.",
        option="--log-level",
        field="log_level",
        metavar="LEVEL",
        option_help="debug, info, warning or error",
    ),
    Setting(
        "PYROSPAN_CHILDREN",
        LAUNCHER,
        parse_bool,
        True,
        _ON_OFF,
        "Also instrument the Python programs the app starts (subprocess, multiprocessing "
        "spawn and forkserver, reloaders); false runs them untouched. Forked workers are "
        "always instrumented.",
        field="children",
    ),
    Setting(
        "PYROSPAN_LOCAL",
        LAUNCHER,
        parse_bool,
        False,
        _ON_OFF,
        "Local mode (--local): no backend needed; a live page while the program runs, then a "
        "summary, an HTML report and pprof files in PYROSPAN_REPORT_DIR.",
        option="--local",
        field="local",
        option_help=(
            "No backend needed: a local receiver and live page while COMMAND runs, "
            "then a summary, an HTML report and pprof files"
        ),
    ),
    Setting(
        "PYROSPAN_REPORT_DIR",
        LAUNCHER,
        parse_name,
        "pyrospan-report",
        "a directory path",
        "Where local mode keeps its SQLite data, report.html and pprof/ files (--report-dir).",
        option="--report-dir",
        field="report_dir",
        metavar="DIR",
        option_help=(
            "Where local mode keeps its data, report.html and pprof/ (default ./pyrospan-report)"
        ),
    ),
    Setting(
        "PYROSCOPE_SERVER_ADDRESS",
        PROFILING,
        parse_url,
        "http://localhost:4040",
        "an http(s) URL such as http://pyroscope:4040",
        "Where profiles are pushed (Pyroscope or Grafana Cloud Profiles).",
        option="--pyroscope-server",
        field="profiler.server_address",
        metavar="URL",
        option_help="Pyroscope to push profiles to",
    ),
    Setting(
        "PYROSCOPE_APPLICATION_NAME",
        PROFILING,
        parse_name,
        None,
        "a name without control characters",
        "Profile service_name; defaults to the OpenTelemetry service.name so they match.",
        field="profiler.application_name",
    ),
    Setting(
        "PYROSCOPE_LABELS",
        PROFILING,
        parse_labels,
        {},
        "k=v,k2=v2 (names of letters, digits and _)",
        "Extra labels on every profile.",
        field="profiler.tags",
    ),
    Setting(
        "PYROSCOPE_SAMPLE_RATE",
        PROFILING,
        parse_sample_rate,
        100,
        f"a positive integer (Hz) up to {MAX_SAMPLE_RATE}",
        "CPU samples per second.",
        option="--sample-rate",
        field="profiler.sample_rate",
        metavar="HZ",
        option_help="CPU samples per second",
    ),
    Setting(
        "PYROSCOPE_UPLOAD_INTERVAL",
        PROFILING,
        parse_interval,
        10,
        f"a whole number of seconds from 1 to {MAX_UPLOAD_INTERVAL}, such as 10s, 1m or 15",
        "How often profiles are sent.",
        option="--upload-interval",
        field="profiler.upload_interval",
        metavar="SECONDS",
        option_help="Seconds between profile uploads",
    ),
    Setting(
        "PYROSCOPE_BASIC_AUTH_USER",
        PROFILING,
        parse_text,
        "",
        "any text",
        "Basic-auth user (Grafana Cloud: the stack's user id).",
        field="profiler.basic_auth_user",
    ),
    Setting(
        "PYROSCOPE_BASIC_AUTH_PASSWORD",
        PROFILING,
        parse_text,
        "",
        "any text",
        "Basic-auth password or API token; never printed.",
        secret=True,
        field="profiler.basic_auth_password",
    ),
    Setting(
        "PYROSCOPE_TENANT_ID",
        PROFILING,
        parse_text,
        "",
        "any text",
        "Tenant for a multi-tenant Pyroscope (sent as X-Scope-OrgID).",
        field="profiler.tenant_id",
    ),
    Setting(
        "PYROSCOPE_HTTP_HEADERS",
        PROFILING,
        parse_headers,
        {},
        'a JSON object such as {"X-Key":"v"} or Name=value,Name2=value',
        "Extra HTTP headers on every push; values never printed.",
        secret=True,
        field="profiler.http_headers",
    ),
    Setting(
        "PYROSCOPE_ONCPU",
        PROFILING,
        parse_bool,
        True,
        _ON_OFF,
        "true: CPU time only; false: wall-clock, so waiting in I/O shows in span profiles.",
        field="profiler.oncpu",
    ),
    Setting(
        "PYROSCOPE_PROFILE_MEMORY",
        PROFILING,
        parse_bool,
        False,
        _ON_OFF,
        "Also send process memory (allocation) profiles.",
        field="profiler.profile_memory",
    ),
    Setting(
        "OTEL_SERVICE_NAME",
        TRACING,
        parse_name,
        None,
        "a name without control characters",
        "service.name of traces and profiles; pyrospan-run derives one from the command.",
        option="--service-name",
        field="service_name",
        metavar="NAME",
        option_help="Service name of traces and profiles",
    ),
    Setting(
        "OTEL_RESOURCE_ATTRIBUTES",
        TRACING,
        parse_resource_attributes,
        {},
        "key=value,key2=value2",
        "Resource attributes; service.namespace, service.version and "
        "deployment.environment(.name) also become profile labels.",
    ),
    Setting(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        TRACING,
        parse_url,
        "http://localhost:4318",
        "an http(s) URL such as http://tempo:4318",
        "OTLP base URL; traces go to <endpoint>/v1/traces.",
        option="--otlp-endpoint",
        metavar="URL",
        option_help="OTLP/HTTP base URL for traces",
    ),
    Setting(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        TRACING,
        parse_url,
        None,
        "an http(s) URL such as http://tempo:4318/v1/traces",
        "Full URL for traces, overriding OTEL_EXPORTER_OTLP_ENDPOINT.",
    ),
    Setting(
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        TRACING,
        parse_protocol_installed,
        "http/protobuf",
        "http/protobuf, or grpc with its exporter installed",
        "OTLP transport; grpc needs opentelemetry-exporter-otlp-proto-grpc.",
    ),
    Setting(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        TRACING,
        parse_protocol_installed,
        None,
        "http/protobuf, or grpc with its exporter installed",
        "OTLP transport for traces only.",
    ),
    Setting(
        "OTEL_EXPORTER_OTLP_HEADERS",
        TRACING,
        parse_otlp_headers,
        "",
        "Name=value,Name2=value",
        "Headers on every OTLP export (API keys); never printed.",
        secret=True,
    ),
    Setting(
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        TRACING,
        parse_otlp_headers,
        "",
        "Name=value,Name2=value",
        "Headers on trace exports; never printed.",
        secret=True,
    ),
    Setting(
        "OTEL_TRACES_EXPORTER",
        TRACING,
        parse_traces_exporters,
        "otlp",
        "otlp, console or none",
        "Where spans go.",
    ),
    Setting(
        "OTEL_TRACES_SAMPLER",
        TRACING,
        parse_sampler,
        "parentbased_always_on",
        "an OpenTelemetry sampler name",
        "Which traces are kept; unsampled spans get no profile.",
    ),
    Setting(
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",
        TRACING,
        parse_names,
        frozenset(),
        "comma-separated instrumentation names, or *",
        "Instrumentations not to load.",
    ),
    Setting(
        "OTEL_SDK_DISABLED",
        TRACING,
        parse_bool,
        False,
        _ON_OFF,
        "Turn the OpenTelemetry SDK off (no spans, so no span profiles).",
    ),
)

BY_NAME: dict[str, Setting] = {setting.name: setting for setting in ALL}
#: Config field (``profiler.NAME`` for ProfilerConfig's) -> the setting that fills it.
BY_FIELD: dict[str, Setting] = {setting.field: setting for setting in ALL if setting.field}


def setting(name: str) -> Setting:
    """The registered setting called ``name``."""
    return BY_NAME[name]


def read_quietly(name: str, environ: Mapping[str, str]) -> Any:
    """The value of ``name``, or its default when it does not parse (reported elsewhere)."""
    entry = BY_NAME[name]
    try:
        return entry.read(environ)
    except SettingError:
        return entry.default


# Variables whose URL may hold a password (``scheme://user:password@host``).
URL_VARIABLES = (
    "PYROSCOPE_SERVER_ADDRESS",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    *(f"{name}_PROXY" for name in ("HTTP", "HTTPS", "ALL")),
    *(f"{name}_proxy" for name in ("http", "https", "all")),
)


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """The raw values of every secret variable that is set, and the passwords in URLs,
    for output scrubbing."""
    found = [environ[s.name] for s in ALL if s.secret and environ.get(s.name)]
    for name in URL_VARIABLES:
        parts = url_userinfo(environ.get(name, ""))
        if parts is not None and ":" in parts[1]:
            from urllib.parse import unquote

            password = parts[1].partition(":")[2]
            found += [password, unquote(password)]
    return [value for value in found if value]
