"""The package's receiver, keeping everything it is sent, for tests and benchmarks to query.

The package's :class:`~pyrospan_launch.receiver.Receiver` keeps nothing: local mode's store
subscribes to it. :class:`RecordingReceiver` subscribes callbacks of its own that keep every
profile, span and handled request in memory, and wakes :meth:`~RecordingReceiver.wait_for`
whenever one arrives::

    with RecordingReceiver() as r:
        run_program(pyroscope_server=r.url, otlp_endpoint=r.url)
        assert r.wait_for(lambda r: r.samples_with_label("span_id", sid), timeout=10)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from pyrospan_launch.receiver.records import ProfileSample, ProfileSeries, ReceivedSpan, RequestInfo
from pyrospan_launch.receiver.server import LOGS_PATH, METRICS_PATH, PUSH_PATH, Receiver


class RecordingReceiver(Receiver):
    """A :class:`Receiver` that keeps what it decodes; every list it returns is a snapshot.

    Takes the receiver's arguments; its own callbacks run first, so the data is kept
    before any callback passed in sees it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # An RLock inside: a predicate given to wait_for may call the queries below.
        self._cond = threading.Condition()
        self._profiles: list[ProfileSeries] = []
        self._spans: list[ReceivedSpan] = []
        self._requests: list[RequestInfo] = []
        self.on_profiles.insert(0, self._keep_profiles)
        self.on_spans.insert(0, self._keep_spans)
        self.on_requests.insert(0, self._keep_request)

    @property
    def push_endpoint(self) -> str:
        """``url + "/push.v1.PusherService/Push"``, for requests the tests make by hand."""
        return self.url + PUSH_PATH

    # ------------------------------------------------------------------ keeping

    def _keep_profiles(self, series: list[ProfileSeries]) -> None:
        with self._cond:
            self._profiles.extend(series)
            self._cond.notify_all()

    def _keep_spans(self, spans: list[ReceivedSpan]) -> None:
        with self._cond:
            self._spans.extend(spans)
            self._cond.notify_all()

    def _keep_request(self, info: RequestInfo) -> None:
        with self._cond:
            self._requests.append(info)
            self._cond.notify_all()

    def note_error(self, message: str) -> None:
        """Keep the error, and wake the waiters: a predicate may look at ``errors``."""
        super().note_error(message)
        with self._cond:
            self._cond.notify_all()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop serving, and wake the waiters so they see the receiver stopped."""
        super().stop(timeout)
        with self._cond:
            self._cond.notify_all()

    # ------------------------------------------------------------------ queries

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
        """Forget everything received so far: data, requests, errors and counts."""
        with self._cond:
            self._profiles.clear()
            self._spans.clear()
            self._requests.clear()
            # The receiver's own record, reset under its lock (taken after ours, as always).
            with self._lock:
                self._errors.clear()
                self._counts.clear()

    def wait_for(self, predicate: Callable[[RecordingReceiver], object], timeout: float) -> bool:
        """Wait until ``predicate(self)`` is truthy; False if ``timeout`` passes first.

        Re-evaluated whenever something has been kept (and at least every 0.25 s).
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
