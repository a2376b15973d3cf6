"""Pyroscope's default ingest limits on labels, and the one cut that fits a value into them.

Grafana Pyroscope's distributor turns a push's labels, plus every string label of a
sample except ``span_id``, into the labels of a series, and rejects the whole profile
when one series breaks a limit (``pkg/validation``: ``validate.go``, ``limits.go``): a
label name over :data:`MAX_NAME_BYTES`, a value over :data:`MAX_VALUE_BYTES` (both
counted in bytes of UTF-8), more than :data:`MAX_SERIES_LABELS` names, or a value that is
not valid UTF-8.  Every label value pyrospan-run sends goes through :func:`fit_value`
(docs/design.md, "Labels within Pyroscope's limits").

This module imports nothing: the settings layer reads user labels with it at start-up.
"""

from __future__ import annotations

#: ``-validation.max-length-label-name``: bytes of UTF-8 in a label name.
MAX_NAME_BYTES = 1024
#: ``-validation.max-length-label-value``: bytes of UTF-8 in a label value.
MAX_VALUE_BYTES = 2048
#: ``-validation.max-label-names-per-series``: label names of one series, all counted.
MAX_SERIES_LABELS = 30

#: The series labels every profile of pyroscope-io 1.4 carries (measured on its pushes):
#: its own, and ``pid`` on every sample (pyrospan-run sets ``report_pid``).  A sample
#: label becomes a series label too, ``span_id`` alone excepted.
PROFILER_LABELS = (
    "__name__",
    "service_name",
    "otel.scope.name",
    "otel.scope.version",
    "process.runtime.name",
    "process.runtime.version",
    "pid",
)

_REPLACEMENT = "\ufffd"


def _without_surrogates(text: str) -> str:
    # A str may hold lone surrogates (os.fsdecode of bad bytes, JSON "\ud800"): they have
    # no UTF-8 form, so the protobuf encoder and pyroscope-io's native tags refuse them.
    return "".join(_REPLACEMENT if "\ud800" <= ch <= "\udfff" else ch for ch in text)


def utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (a lone surrogate counts as the 3 bytes of U+FFFD)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def fit_value(text: str, limit: int = MAX_VALUE_BYTES) -> str:
    """``text`` as valid UTF-8 of at most ``limit`` bytes, cut at a character boundary.

    The same text comes back (the same object) when it already fits, which is the fast
    path every root span's name takes.  Lone surrogates become U+FFFD.
    """
    if text.isascii():
        return text if len(text) <= limit else text[:limit]
    try:
        data = text.encode()
    except UnicodeEncodeError:
        text = _without_surrogates(text)
        data = text.encode()
    if len(data) <= limit:
        return text
    # Bytes cut inside a character leave an incomplete sequence at the end only: drop it.
    return data[:limit].decode("utf-8", "ignore")


def fit_name(text: str) -> str | None:
    """A label name as it may be sent, or None when it is empty or too long to send at all.

    A name is not cut: two long names cut alike would become one, and Pyroscope
    rejects a series whose label names repeat (or one that is empty).
    """
    if not text:
        return None
    fitted = fit_value(text, MAX_NAME_BYTES)
    return fitted if len(fitted) == len(text) else None  # surrogates replaced, not cut


def user_label_room(span_labels: int) -> int:
    """How many labels of the user's or the app's a series can still take.

    ``span_labels`` is how many labels pyrospan-run adds to a span's samples besides
    ``span_id`` (``span_name``, and ``trace_id`` when asked for).
    """
    return max(0, MAX_SERIES_LABELS - len(PROFILER_LABELS) - span_labels)
