"""What the local store holds and answers with: frames, scopes, root spans, its error."""

from __future__ import annotations

from dataclasses import dataclass

#: One stack frame as stored: (function name, file name, line).
Frame = tuple[str, str, int]


class StoreError(Exception):
    """The file is not a store this version can use; ``str()`` is the line to show."""


@dataclass(frozen=True)
class Scope:
    """What a flame graph or a self-time list covers: one span, all spans of a name, or all."""

    kind: str  # "process", "name" or "span"
    key: str = ""

    @staticmethod
    def parse(text: str) -> Scope | None:
        """``process``, ``name:<span name>`` or ``span:<span id>``; None for anything else."""
        if text == "process":
            return Scope("process")
        kind, sep, key = text.partition(":")
        if sep and kind in ("name", "span") and key:
            return Scope(kind, key)
        return None

    def __str__(self) -> str:
        return self.kind if self.kind == "process" else f"{self.kind}:{self.key}"


@dataclass(frozen=True)
class SpanRecord:
    """One stored root span."""

    span_id: str
    trace_id: str
    name: str
    service: str
    start_ns: int
    end_ns: int
    status_code: int

    @property
    def duration_ns(self) -> int:
        """End minus start, never negative (a clock step must not show a negative span)."""
        return max(0, self.end_ns - self.start_ns)
