"""The relay's sending side: a bounded queue of pushes and the thread that forwards them.

A push is queued the moment it is read, so pyroscope-io never waits for the backend.  A
backend that is down or never answers costs no memory: at most ``max_queued`` pushes
wait, and the oldest is dropped (and counted) to make room.  Each failure and drop is said
by :mod:`pyrospan_launch.agent.relay.delivery` (loaded with the first), which names no
header or credential, and of an answer only a refusal's short reason, secrets hidden.

This module loads with the profiler, before the app: it imports nothing costly until the
first push is sent (docs/design.md, "Start-up and exit discipline").
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections import deque

from pyrospan_launch.agent import native

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrospan_launch.agent.relay.delivery import Deliveries
    from pyrospan_launch.agent.relay.stats import Stats
    from pyrospan_launch.agent.relay.upstream import Upstream


class Push:
    """One push on its way: the server, the target it came with, its headers and body."""

    __slots__ = ("body", "headers", "target", "upstream")

    def __init__(
        self, upstream: Upstream, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        self.upstream = upstream
        self.target = target
        self.headers = headers
        self.body = body


class Forwarder:
    """Queues pushes and sends them upstream one at a time, on a thread of its own."""

    def __init__(self, stats: Stats, *, max_queued: int, timeout: float) -> None:
        self.stats = stats
        self.timeout = timeout
        self.queue: deque[Push] = deque()
        self._deliveries: Deliveries | None = None
        self._max_queued = max_queued
        # Real, even in a monkey-patched app; over a plain lock, as eventlet's patching
        # swaps every recursive lock it finds for a green one keyed by greenlet.
        self._cond = native.Condition(native.allocate_lock())
        self._busy = False
        # Set without the lock: a forked child abandons its parent's forwarder, whose lock
        # the parent's thread may have held at the fork.
        self.stopped = False

    def start(self) -> None:
        """Start the forwarding thread."""
        native.Thread(target=self._run, name="pyrospan-relay-forward", daemon=True).start()

    def put(self, push: Push) -> None:
        """Queue ``push``, dropping the oldest one waiting if the queue is full."""
        with self._cond:
            dropped = None
            if len(self.queue) >= self._max_queued:
                dropped = self.queue.popleft()
                self.stats.dropped += 1
            self.queue.append(push)
            self._cond.notify_all()
        if dropped is not None:
            self.deliveries.dropped(dropped.upstream)

    @property
    def deliveries(self) -> Deliveries:
        """What says the failures (made, and its module loaded, with the first one)."""
        if self._deliveries is None:
            from pyrospan_launch.agent.problem_lines import interval_seconds
            from pyrospan_launch.agent.relay.delivery import Deliveries

            self._deliveries = Deliveries(interval_seconds(os.environ), _secrets())
        return self._deliveries

    def summary(self) -> str | None:
        """The exit line when pushes were lost (failed, dropped, or still queued)."""
        stats = self.stats
        left = len(self.queue) + (1 if self._busy else 0)
        if not (stats.failed or stats.dropped or left):
            return None
        return self.deliveries.summary(stats.failed, stats.dropped, left, stats.forwarded)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued push was forwarded; False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self.queue or self._busy:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self.queue:
                    if self.stopped:
                        return
                    cond.wait(1.0)
                if self.stopped:
                    return
                push = self.queue.popleft()
                self._busy = True
            try:
                self._forward(push)
            finally:
                with cond:
                    self._busy = False
                    cond.notify_all()

    def _forward(self, push: Push) -> None:
        started = time.thread_time()
        if self._deliveries is None:
            # Made here, on this thread, so that reporting never imports at exit.
            self._deliveries = self.deliveries
        token = _suppress_instrumentation()
        try:
            answer = push.upstream.send(push.target, push.headers, push.body, self.timeout)
        except Exception as exc:  # the network, in all its forms: counted and said, never raised
            self.stats.failed += 1
            self.stats.last_status = None
            self.stats.last_cause = self.deliveries.failed(push.upstream, error=exc)
            return
        finally:
            _restore_instrumentation(token)
            self.stats.cpu_seconds += time.thread_time() - started
        self.stats.last_status = answer.status
        if 200 <= answer.status < 300:
            self.stats.forwarded += 1
            self.stats.last_cause = ""
        else:
            self.stats.failed += 1
            self.stats.last_cause = self.deliveries.failed(push.upstream, answer=answer)


def _secrets() -> list[str]:
    from pyrospan_launch.common import redact

    return redact.secret_values(os.environ)


def _suppress_instrumentation() -> Any:
    """Suppress OpenTelemetry's instrumentation on this thread, if OpenTelemetry is loaded."""
    context = sys.modules.get("opentelemetry.context")
    if context is None:
        return None  # nothing is instrumented, and importing it now would start it
    try:
        current = context.get_current()
        for key in (
            getattr(context, "_SUPPRESS_INSTRUMENTATION_KEY", None),
            "suppress_instrumentation",
            getattr(context, "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", None),
            "suppress_http_instrumentation",
        ):
            if key is not None:
                current = context.set_value(key, True, current)
        return (context, context.attach(current))
    except Exception:
        return None


def _restore_instrumentation(token: Any) -> None:
    if token is not None:
        context, attached = token
        with contextlib.suppress(Exception):
            context.detach(attached)
