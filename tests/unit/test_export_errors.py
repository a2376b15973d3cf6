"""Export errors become one ``pyrospan:`` line per problem per interval, never a secret.

The real OTLP/HTTP exporter sends real batches to broken backends on 127.0.0.1 (see
fake_backends): what OpenTelemetry logs is what the filter sees in production.  The
rate limit itself is checked with a clock the test moves.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
from collections.abc import Iterator

import pytest
from fake_backends import backend
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.util.re import parse_env_headers

from pyrospan_launch.agent import export_errors
from pyrospan_launch.agent.export_errors import ExportErrorFilter

SECRET = "Zq-PLANTED-s3cr3t-91"
ENV = {
    "PYROSCOPE_UPLOAD_INTERVAL": "60",
    "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20{SECRET}",
}


@pytest.fixture
def filters() -> Iterator[tuple[ExportErrorFilter, export_errors.HeaderWarningFilter]]:
    installed = export_errors.install(environ=ENV)
    yield installed
    export_errors.uninstall(installed)


def _has_otlp_common() -> bool:
    """Whether opentelemetry-exporter-otlp-common (the shared HTTP client) is installed."""
    return importlib.util.find_spec("opentelemetry.exporter.otlp.common") is not None


def test_the_loggers_filtered_are_the_ones_opentelemetry_uses() -> None:
    # A renamed logger would let OpenTelemetry's per-batch lines through again.
    for name in [*export_errors.EXPORT_LOGGERS, export_errors.HEADER_LOGGER]:
        if ".grpc." in name:
            continue  # the gRPC exporter is not installed here; its name is its documented one
        if name.startswith("opentelemetry.exporter.otlp.common.") and not _has_otlp_common():
            continue  # new in 0.66b0 (1.45): older exporters log under their own modules
        module = importlib.import_module(name)
        used = getattr(module, "_logger", None) or getattr(module, "logger", None)
        if used is None:
            # Before 1.39 the SDK's batch processor takes its logger when it is built.
            source = inspect.getsource(module)
            assert "logging.getLogger(__name__)" in source, name
            continue
        assert isinstance(used, logging.Logger) and used.name == name, name


def export_spans(url: str, count: int) -> None:
    """``count`` batches of one span each, through the real exporter, synchronously."""
    exporter = OTLPSpanExporter(
        endpoint=f"{url}/v1/traces",
        timeout=1.5,
        headers={"authorization": f"Bearer {SECRET}"},
    )
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for index in range(count):
        with tracer.start_as_current_span(f"batch-{index}"):
            pass
    provider.shutdown()


@pytest.mark.parametrize(
    ("kind", "cause"),
    [
        ("refused", "connection refused"),
        ("401", "HTTP 401 Unauthorized (check the credentials"),
        ("500", "HTTP 500 Internal Server Error"),
        ("garbage", "the answer is not HTTP"),
    ],
)
def test_repeated_failures_give_one_line_with_the_cause(
    filters: tuple[ExportErrorFilter, export_errors.HeaderWarningFilter],
    kind: str,
    cause: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with backend(kind) as url:
        export_spans(url, 2 if kind in ("refused", "garbage") else 4)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"pyrospan: spans not sent: {cause}"), lines[0]
    assert "at most once every 60 s" in lines[0]
    assert SECRET not in err
    # None of OpenTelemetry's own per-batch records reached a handler.
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry")], caplog.text


def record(
    msg: str, *args: object, name: str = export_errors.EXPORT_LOGGERS[3]
) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, None)


def test_a_problem_is_reported_at_most_once_per_interval_with_the_count(
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = [100.0]
    errors = ExportErrorFilter(10, [], clock=lambda: now[0])
    failed = "Failed to export %s batch code: %s, reason: %s"
    for step in range(25):  # one failed batch every 2 s for 50 s
        now[0] = 100.0 + 2 * step
        assert errors.filter(record(failed, "spans", 503, "Service Unavailable")) is False
    assert errors.filter(record(failed, "spans", 401, "Unauthorized")) is False
    assert errors.reported == [
        "spans not sent: HTTP 503 Service Unavailable; reported again at most once every 10 s "
        "while it lasts",
        "spans still not sent: HTTP 503 Service Unavailable (5 times in the last 10 s)",
        "spans still not sent: HTTP 503 Service Unavailable (5 times in the last 10 s)",
        "spans still not sent: HTTP 503 Service Unavailable (5 times in the last 10 s)",
        "spans still not sent: HTTP 503 Service Unavailable (5 times in the last 10 s)",
        "spans not sent: HTTP 401 Unauthorized (check the credentials: "
        "OTEL_EXPORTER_OTLP_HEADERS, or the app's exporter); reported again at most once "
        "every 10 s while it lasts",
    ]
    assert capsys.readouterr().err.splitlines() == [f"pyrospan: {r}" for r in errors.reported]


def test_other_records_pass_with_secrets_hidden() -> None:
    errors = ExportErrorFilter(10, [SECRET])
    other = record("Exporter already shutdown, token %s", SECRET)
    assert errors.filter(other) is True
    assert other.getMessage() == "Exporter already shutdown, token <redacted>"
    assert errors.reported == []


def test_a_malformed_otlp_header_is_reported_without_its_value(
    filters: tuple[ExportErrorFilter, export_errors.HeaderWarningFilter],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # "Name: value" instead of "Name=value": OpenTelemetry's warning quotes the header.
    _, headers = filters
    headers._environ = {"OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"Authorization: Bearer {SECRET}"}
    assert parse_env_headers(f"Authorization: Bearer {SECRET}", liberal=True) == {}
    assert parse_env_headers(f"Authorization: Bearer {SECRET}", liberal=True) == {}
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "pyrospan: OTEL_EXPORTER_OTLP_TRACES_HEADERS=<redacted>: expected Name=value,Name2=value "
        "(values percent-encoded); a header not in that form is left out of every export"
    ]
    assert SECRET not in caplog.text


def test_spans_given_up_on_at_exit_are_said_lost_unless_their_problem_was_said(
    capsys: pytest.CaptureFixture[str],
) -> None:
    slow = ExportErrorFilter(10, [])
    slow.exit_abandoned(["profiles"], 0.5)  # the relay says its own
    slow.exit_abandoned(["spans"], 2.5)
    assert capsys.readouterr().err.splitlines() == [
        "pyrospan: spans not confirmed at exit: the OTLP endpoint did not answer within 2.5 "
        "s, so the last spans may be lost; raise PYROSPAN_EXIT_TIMEOUT, or point "
        "OTEL_EXPORTER_OTLP_ENDPOINT at a collector near the app"
    ]
    down = ExportErrorFilter(10, [])
    down.filter(record("Failed to export %s batch code: %s, reason: %s", "spans", 503, "x"))
    capsys.readouterr()
    down.exit_abandoned(["spans"], 0.5)  # a backend said to be failing: nothing new to say
    assert capsys.readouterr().err == ""
