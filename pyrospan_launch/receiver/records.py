"""What the receiver decodes requests into; a bad request raises wire.errors.DecodeError."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "Frame",
    "ProfileSample",
    "ProfileSeries",
    "ReceivedSpan",
    "RequestInfo",
]

# OTLP SpanFlags: bit 8 says whether bit 9 (parent is remote) is known.
_FLAG_HAS_IS_REMOTE: Final = 0x100
_FLAG_IS_REMOTE: Final = 0x200


@dataclass(frozen=True)
class RequestInfo:
    """What the receiver keeps about one HTTP request (never any secret).

    ``has_authorization`` only records whether an ``Authorization`` header was present;
    its value is never stored.  ``tenant_id`` is the ``X-Scope-OrgID`` header.
    """

    seq: int
    received_at: float
    method: str
    path: str
    status: int
    user_agent: str = ""
    has_authorization: bool = False
    tenant_id: str = ""
    content_type: str = ""
    content_encoding: str = ""
    content_length: int = 0
    error: str = ""


@dataclass(frozen=True)
class Frame:
    """One stack frame of a profile sample."""

    name: str
    filename: str = ""
    line: int = 0


@dataclass(frozen=True)
class ProfileSample:
    """One pprof sample, resolved against the profile's tables.

    ``stack`` holds function names root first (the leaf is last); ``frames`` is the same
    stack with file and line.  ``values`` line up with the profile's ``sample_types``.
    ``labels`` are the pprof string labels (pyroscope-io puts thread tags such as
    ``span_id`` here); ``num_labels`` the numeric ones.
    """

    stack: tuple[str, ...]
    values: tuple[int, ...]
    labels: dict[str, str] = field(default_factory=dict)
    num_labels: dict[str, int] = field(default_factory=dict)
    frames: tuple[Frame, ...] = ()
    # Every string label in order, repeats included: a key that appears twice (two
    # span_id values on one sample) shows here, where ``labels`` keeps only the last.
    label_pairs: tuple[tuple[str, str], ...] = ()

    @property
    def leaf(self) -> str:
        """The innermost function name, or ``""`` for an empty stack."""
        return self.stack[-1] if self.stack else ""


@dataclass(frozen=True)
class ProfileSeries:
    """One decoded profile of one push series.

    ``labels`` are the series labels (``__name__`` such as ``process_cpu``,
    ``service_name`` and the profiler's tags).  A ``RawProfileSeries`` carrying several
    raw profiles yields one ``ProfileSeries`` per profile, all with the same labels.
    """

    labels: dict[str, str]
    samples: list[ProfileSample]
    sample_types: list[tuple[str, str]] = field(default_factory=list)
    period_type: tuple[str, str] = ("", "")
    period: int = 0
    time_nanos: int = 0
    duration_nanos: int = 0
    profile_id: str = ""
    request: RequestInfo | None = None

    @property
    def name(self) -> str:
        """The ``__name__`` label, e.g. ``process_cpu``."""
        return self.labels.get("__name__", "")

    @property
    def service_name(self) -> str:
        """The ``service_name`` label (pyroscope-io's ``application_name``)."""
        return self.labels.get("service_name", "")


@dataclass(frozen=True)
class ReceivedSpan:
    """One OTLP span, flattened.

    Ids are lowercase hex (``trace_id`` 32 chars, ``span_id`` 16, ``parent_span_id`` 16 or
    ``""`` for a root span).  ``kind`` and ``status_code`` are the OTLP enum numbers.
    Attribute values are flattened ``AnyValue``s: str, bool, int, float, bytes, list, dict
    or ``None``.
    """

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, object]
    resource: dict[str, object]
    scope_name: str
    scope_version: str = ""
    status_code: int = 0
    status_message: str = ""
    flags: int = 0

    @property
    def is_root(self) -> bool:
        """True when the span has no parent at all."""
        return not self.parent_span_id

    @property
    def parent_is_remote(self) -> bool | None:
        """Whether the parent lives in another process, if the exporter said so."""
        if not self.flags & _FLAG_HAS_IS_REMOTE:
            return None
        return bool(self.flags & _FLAG_IS_REMOTE)

    @property
    def duration_ns(self) -> int:
        """``end_ns - start_ns``."""
        return self.end_ns - self.start_ns
