"""What an OpenTelemetry export log record is about: its signal and its cause, in words.

``classify`` reads a record of the exporters' loggers (the exception it carries, or the
HTTP status it names) and gives ``("spans", "HTTP 401 Unauthorized")`` or
``("spans", "connection refused")``; :mod:`pyrospan_launch.agent.export_errors` counts
those problems and reports each once per interval.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from http import HTTPStatus

_SIGNALS = {"span": "spans", "spans": "spans", "metrics": "metrics", "logs": "logs"}

# The cause of "gave up after retrying": the retries' own cause when it is known.
GAVE_UP = "gave up after retrying (timeout or max retries)"


def _exception_chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and what it wraps (causes, contexts, urllib3's ``reason``, exception args)."""
    seen: set[int] = set()
    todo = [error]
    while todo:
        current = todo.pop()
        if id(current) in seen or len(seen) > 20:
            continue
        seen.add(id(current))
        yield current
        wrapped = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        wrapped += list(getattr(current, "args", ()))
        todo += [item for item in wrapped if isinstance(item, BaseException)]


# Exception class names (anywhere in the chain, any base class) -> the cause shown.
_CAUSE_BY_TYPE = (
    ("InvalidHeader", "an OTLP header value is not valid (check the OTEL_EXPORTER_OTLP_*HEADERS)"),
    ("ConnectionRefusedError", "connection refused"),
    ("NameResolutionError", "host name not found"),
    ("gaierror", "host name not found"),
    ("SSLError", "TLS handshake failed"),
    ("Timeout", "no answer in time"),
    ("TimeoutError", "no answer in time"),
    ("ReadTimeoutError", "no answer in time"),
    ("ConnectTimeoutError", "no answer in time"),
    ("BadStatusLine", "the answer is not HTTP"),
    ("RemoteDisconnected", "the backend closed the connection without answering"),
    ("ConnectionResetError", "connection reset by the backend"),
    ("ConnectionAbortedError", "connection aborted"),
)
# The same causes recognised from the message, for transports that wrap them in text.
_CAUSE_BY_TEXT = (
    ("connection refused", "connection refused"),
    ("timed out", "no answer in time"),
    ("badstatusline", "the answer is not HTTP"),
    ("remote end closed connection", "the backend closed the connection without answering"),
    ("connection reset", "connection reset by the backend"),
    ("name or service not known", "host name not found"),
    ("nodename nor servname", "host name not found"),
    ("temporary failure in name resolution", "host name not found"),
)


def cause_of_error(error: object) -> str:
    """A short, secret-free description of why an export failed."""
    if isinstance(error, BaseException):
        chain = list(_exception_chain(error))
        names = {cls.__name__ for exc in chain for cls in type(exc).__mro__}
        for name, cause in _CAUSE_BY_TYPE:
            if name in names:
                return cause
        text = " ".join(str(exc) for exc in chain).lower()
        for marker, cause in _CAUSE_BY_TEXT:
            if marker in text:
                return cause
        # The message may hold anything the transport saw (a header value): name only.
        return type(error).__name__
    text = str(error).lower()
    for marker, cause in _CAUSE_BY_TEXT:
        if marker in text:
            return cause
    return "export failed"


def cause_of_status(code: int) -> str:
    """``HTTP 401 Unauthorized`` and a hint; the phrase is the standard one, never the backend's."""
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = "(unknown status)"
    hint = ""
    if code in (401, 403):
        hint = " (check the credentials: OTEL_EXPORTER_OTLP_HEADERS, or the app's exporter)"
    elif code == 404:
        hint = " (check the endpoint URL)"
    return f"HTTP {code} {phrase}{hint}"


def _signal(value: object) -> str:
    return _SIGNALS.get(str(value).lower(), "telemetry")


def _as_status(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _before_1_39(template: str, args: tuple[object, ...]) -> tuple[str, str] | None:
    """The OTLP/HTTP exporters' wording before 1.39, which names the signal in the text.

    ``Failed to export span batch code: %s, reason: %s`` (status, body) and ``Transient
    error %s encountered while exporting span batch`` (the HTTP reason phrase): both
    become the cause 1.39 and later give, so one problem stays one line; a retry whose
    reason phrase is not a standard one is dropped (``("", "")``).
    """
    for word in ("span", "metrics", "logs"):
        if template.startswith(f"Failed to export {word} batch code:") and args:
            status = _as_status(args[0])
            if status is not None:
                return _signal(word), cause_of_status(status)
        if template.startswith(f"Transient error %s encountered while exporting {word} batch"):
            from http import HTTPStatus

            phrases = {status.phrase: status.value for status in HTTPStatus}
            code = phrases.get(str(args[0])) if args else None
            if code is not None:
                return _signal(word), cause_of_status(code)
            # A reason phrase of the server's own (it may echo credentials): the final
            # "Failed to export" record, if the retries fail, says the status.
            return "", ""
    return None


def classify(record: logging.LogRecord) -> tuple[str, str] | None:
    """``(signal, cause)`` for a record that reports a failed export; None for any other.

    ``("", "")`` marks a record that is only a consequence of another (a retry abandoned
    because the process is shutting down) and is dropped without a report.
    """
    template = record.msg if isinstance(record.msg, str) else ""
    args = record.args if isinstance(record.args, tuple) else ()
    if template.startswith("Shutdown in progress, aborting retry"):
        return "", ""
    old = _before_1_39(template, args)
    if old is not None:
        return old
    if template.startswith("Failed to export %s batch code:") and len(args) >= 3:
        status = _as_status(args[1])
        if status is not None:
            return _signal(args[0]), cause_of_status(status)
        return _signal(args[0]), cause_of_error(args[2])
    if template.startswith("Transient error %s encountered while exporting %s") and len(args) >= 2:
        if isinstance(args[0], str):
            # The HTTP reason phrase of a retryable answer (503, 429...): the status it names.
            code = {status.phrase: status.value for status in HTTPStatus}.get(args[0])
            if code is not None:
                return _signal(args[1]), cause_of_status(code)
        return _signal(args[1]), cause_of_error(args[0])
    if template.startswith("Failed to export %s batch due to timeout") and args:
        return _signal(args[0]), GAVE_UP
    if template.startswith("Exception while exporting"):
        error = record.exc_info[1] if record.exc_info else None
        kind = _signal(args[0]) if args else "spans"
        return kind, cause_of_error(error) if error is not None else "the exporter failed"
    if template.startswith("Queue full, dropping") and args:
        kind = _signal(args[0])
        return kind, f"the export queue is full, so {kind} are dropped (the backend is too slow)"
    if template.startswith(("Failed to export", "Transient error")):
        # Other exporters' wording (gRPC): the signal and an error, wherever they are.
        kind = next((_signal(a) for a in args if _signal(a) != "telemetry"), "telemetry")
        error = next((a for a in args if isinstance(a, BaseException)), None)
        status = next((s for s in map(_as_status, args) if s is not None), None)
        if status is not None and 100 <= status < 600:
            return kind, cause_of_status(status)
        return kind, cause_of_error(error) if error is not None else "export failed"
    return None
