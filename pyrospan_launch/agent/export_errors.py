"""OpenTelemetry's export errors as one ``pyrospan:`` line per problem per interval.

Left alone, the OTLP exporter logs every batch it fails to send and every retry: a
backend answering 401 or 500 gave five lines a second with a 200 ms batch delay, one that
refuses connections three lines per batch ("Transient error ... retrying in 1.12s").  A
filter on the loggers that say these things turns each record into an occurrence of a
*problem*, the signal and its cause (``spans`` and ``HTTP 401 Unauthorized``, or
``connection refused``): the first occurrence is reported at once, later ones at most
once per interval, with their count.  The raw records are dropped, because their text
can carry what the backend answered or, for a malformed header, the header itself.
Every other record of those loggers passes, with secrets hidden.

The interval is the profile upload interval (``PYROSCOPE_UPLOAD_INTERVAL``), at least
60 s (see :mod:`pyrospan_launch.agent.problem_lines`).

pyroscope-io says nothing about failed uploads (its Python logger is disabled unless
``configure(enable_logging=True)`` and its native logging, unfiltered, goes straight to
stderr); the relay's forwarder says profiles' failures instead
(:mod:`pyrospan_launch.agent.relay.delivery`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

from pyrospan_launch.agent.export_causes import GAVE_UP, classify
from pyrospan_launch.agent.lifecycle import Lifecycle
from pyrospan_launch.agent.problem_lines import ProblemLines, interval_seconds
from pyrospan_launch.common import log, redact

# Every logger that reports a failed export or a header it cannot use (OpenTelemetry
# 1.38 to 1.45; otlp.common is new in 0.66b0).  tests/unit/test_export_errors.py checks,
# at both ends of the range, that they still exist and still say it.
EXPORT_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.trace.export",
)
HEADER_LOGGER = "opentelemetry.util.re"

# Where OTLP headers come from, most specific first: a header the SDK cannot parse is
# reported against the variable that holds it.
HEADER_VARIABLES = (
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
    "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    "OTEL_EXPORTER_OTLP_HEADERS",
)
HEADERS_EXPECTED = "Name=value,Name2=value (values percent-encoded)"

# The exit call that sends the last span batch, by the name the tracing start gives it, and
# the signal that span export problems are said under.
SPANS_EXIT_CALL = "spans"


class ExportErrorFilter(logging.Filter):
    """Collapses export errors into rate-limited ``pyrospan:`` lines; hides secrets in the rest."""

    def __init__(
        self, interval: float, secrets: list[str], *, clock: Callable[[], float] | None = None
    ) -> None:
        super().__init__()
        self.lines = ProblemLines(interval, secrets, clock=clock)
        self.secrets = secrets
        self._last_cause: dict[str, str] = {}
        # The last failure of each signal, for ``pyrospan-run --check``: its cause, and the
        # server's short reason when it answered one (secrets hidden).
        self.last_failure: dict[str, tuple[str, str]] = {}

    @property
    def interval(self) -> float:
        """Seconds between two lines about one problem."""
        return self.lines.interval

    @property
    def reported(self) -> list[str]:
        """What was said, for tests."""
        return self.lines.reported

    def after_fork(self) -> None:
        """A fresh lock in a forked child (the parent's may have been held at the fork)."""
        self.lines.after_fork()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            problem = classify(record)
            if problem is None:
                _hide_secrets(record, self.secrets)
                return True
            if problem != ("", ""):
                self._occurred(*problem)
                self.last_failure[problem[0]] = (self._last_cause[problem[0]], self._reason(record))
        except Exception as exc:  # never let a log line break the app's export thread
            log.debug(f"export error filter: {type(exc).__name__}: {exc}")
        return False

    def _reason(self, record: logging.LogRecord) -> str:
        """The server's short reason in a "Failed to export ... code: N, reason: TEXT" record."""
        args = record.args if isinstance(record.args, tuple) else ()
        text = args[-1] if "reason" in str(record.msg) and args else ""
        if not isinstance(text, str):
            return ""
        from pyrospan_launch.agent.relay.upstream import short_reason

        return redact.scrub(short_reason(text.encode()), self.secrets)

    def exit_abandoned(self, unfinished: list[str], waited: float) -> None:
        """The exit flush gave up on ``unfinished``: say that the last spans may be lost.

        May: a backend that took the batch and answers late has it, but nothing here can
        tell that from one that never will.

        Unless a span export problem was said already in this process: a backend that is
        down or refuses the spans was named then, with what to change.  A backend that is
        merely slow is said nowhere else, and a short job can lose all its spans to it.
        """
        if SPANS_EXIT_CALL not in unfinished or self.lines.totals(SPANS_EXIT_CALL):
            return
        log.warning(
            f"spans not confirmed at exit: the OTLP endpoint did not answer within {waited:g} "
            "s, so the last spans may be lost; raise PYROSPAN_EXIT_TIMEOUT, or point "
            "OTEL_EXPORTER_OTLP_ENDPOINT at a collector near the app"
        )

    def _occurred(self, signal: str, cause: str) -> None:
        if cause == GAVE_UP:
            # The end of the retries reported already: the same problem once more.
            cause = self._last_cause.get(signal, cause)
        self._last_cause[signal] = cause
        self.lines.occurred(signal, cause)


def _hide_secrets(record: logging.LogRecord, secrets: list[str]) -> None:
    """Format the record's message (and traceback) now, with secrets hidden."""
    message = record.getMessage()
    clean = redact.scrub(message, secrets)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        clean = redact.scrub(text, secrets)
        if clean != text:
            record.exc_text = clean


class HeaderWarningFilter(logging.Filter):
    """OpenTelemetry's "Header format invalid! ...: <header>" as our line, without the header."""

    def __init__(self, environ: Mapping[str, str], secrets: list[str]) -> None:
        super().__init__()
        self._environ = environ
        self.secrets = secrets
        self._said: set[str] = set()
        self.reported: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            template = record.msg if isinstance(record.msg, str) else ""
            if not template.startswith("Header format invalid"):
                _hide_secrets(record, self.secrets)
                return True
            header = str(record.args[0]) if isinstance(record.args, tuple) and record.args else ""
            variable = next(
                (
                    name
                    for name in HEADER_VARIABLES
                    if header and header.strip() in self._environ.get(name, "")
                ),
                "OTEL_EXPORTER_OTLP_HEADERS",
            )
            if variable not in self._said:
                self._said.add(variable)
                line = (
                    f"{variable}=<redacted>: expected {HEADERS_EXPECTED}; a header not in "
                    "that form is left out of every export"
                )
                self.reported.append(line)
                log.warning(line)
        except Exception as exc:
            log.debug(f"header warning filter: {type(exc).__name__}: {exc}")
        return False


def install(
    lifecycle: Lifecycle | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[ExportErrorFilter, HeaderWarningFilter]:
    """Put the filters on OpenTelemetry's export and header loggers (the agent does, once).

    Call it before the SDK builds its exporters (a malformed header is logged then).  It
    imports nothing of OpenTelemetry: loggers exist by name before their modules load.
    """
    env = os.environ if environ is None else environ
    secrets = redact.secret_values(env)
    errors = ExportErrorFilter(interval_seconds(env), secrets)
    headers = HeaderWarningFilter(env, secrets)
    for name in EXPORT_LOGGERS:
        logging.getLogger(name).addFilter(errors)
    logging.getLogger(HEADER_LOGGER).addFilter(headers)
    if lifecycle is not None:
        lifecycle.after_fork_in_child(errors.after_fork)
        lifecycle.when_abandoned(errors.exit_abandoned)
    return errors, headers


def uninstall(filters: tuple[ExportErrorFilter, HeaderWarningFilter]) -> None:
    """Take the filters :func:`install` returned off again (tests)."""
    errors, headers = filters
    for name in EXPORT_LOGGERS:
        logging.getLogger(name).removeFilter(errors)
    logging.getLogger(HEADER_LOGGER).removeFilter(headers)
