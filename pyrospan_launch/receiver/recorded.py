"""What a receiver that keeps data in memory answers: the queries tests and benchmarks use.

Local mode's receiver keeps nothing (its callbacks store to SQLite); a receiver made with
``keep_in_memory=True`` keeps every profile, span and request, and these read them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from pyrospan_launch.receiver.handler import LOGS_PATH, METRICS_PATH
from pyrospan_launch.receiver.records import (
    ProfileSample,
    ProfileSeries,
    ReceivedSpan,
    RequestInfo,
)

_Self = TypeVar("_Self", bound="RecordedData")


class RecordedData:
    """Snapshots of what was received, safe to read from any thread."""

    _cond: threading.Condition
    _profiles: list[ProfileSeries]
    _spans: list[ReceivedSpan]
    _requests: list[RequestInfo]
    _errors: list[str]
    _counts: dict[str, int]

    @property
    def profiles(self) -> list[ProfileSeries]:
        """Every decoded profile, in arrival order (each with its ``request`` info)."""
        with self._cond:
            return list(self._profiles)

    @property
    def spans(self) -> list[ReceivedSpan]:
        """Every decoded span, in arrival order."""
        with self._cond:
            return list(self._spans)

    @property
    def requests(self) -> list[RequestInfo]:
        """Every request handled (including rejected ones), in completion order."""
        with self._cond:
            return list(self._requests)

    @property
    def errors(self) -> list[str]:
        """Internal errors and callback failures (not client errors)."""
        with self._cond:
            return list(self._errors)

    def count(self, path: str) -> int:
        """Number of successfully handled requests to ``path`` (e.g. ``"/v1/metrics"``)."""
        with self._cond:
            return self._counts.get(path, 0)

    @property
    def metrics_requests(self) -> int:
        """Accepted ``/v1/metrics`` requests."""
        return self.count(METRICS_PATH)

    @property
    def logs_requests(self) -> int:
        """Accepted ``/v1/logs`` requests."""
        return self.count(LOGS_PATH)

    def samples(self) -> list[ProfileSample]:
        """All profile samples of all series, in arrival order."""
        with self._cond:
            return [sample for series in self._profiles for sample in series.samples]

    def samples_with_label(self, key: str, value: str) -> list[ProfileSample]:
        """Samples whose pprof string label ``key`` equals ``value``."""
        with self._cond:
            return [
                sample
                for series in self._profiles
                for sample in series.samples
                if sample.labels.get(key) == value
            ]

    def root_spans(self) -> list[ReceivedSpan]:
        """Spans without a parent span id."""
        with self._cond:
            return [span for span in self._spans if not span.parent_span_id]

    def clear(self) -> None:
        """Forget everything received so far."""
        with self._cond:
            self._profiles.clear()
            self._spans.clear()
            self._requests.clear()
            self._errors.clear()
            self._counts.clear()

    def wait_for(self: _Self, predicate: Callable[[_Self], object], timeout: float) -> bool:
        """Wait until ``predicate(self)`` is truthy; False if ``timeout`` passes first.

        Re-evaluated whenever a request has been stored (and at least every 0.25 s).
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if predicate(self):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.25))
