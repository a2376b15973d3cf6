"""The relay's sending side: a bounded queue of pushes and the thread that forwards them.

A push is queued the moment it is read, so pyroscope-io never waits for the backend.  A
backend that is down or never answers costs no memory: at most ``max_queued`` pushes
wait, and the oldest is dropped (and counted) to make room.  Nothing logged here names a
header, a credential or the text of an upstream answer.

This module loads with the profiler, before the app: it imports nothing costly until the
first push is sent (docs/design.md, "Start-up and exit discipline").
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import deque
from collections.abc import Callable

from pyrospan_launch.agent import native
from pyrospan_launch.common import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrospan_launch.agent.relay.stats import Stats

# (url, headers, body, timeout) -> the HTTP status of the answer.
Send = Callable[[str, list[tuple[str, str]], bytes, float], int]


class Push:
    """One push on its way: where it goes, the headers it goes with, its (rewritten) body."""

    __slots__ = ("body", "headers", "target")

    def __init__(self, target: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.target = target
        self.headers = headers
        self.body = body


class Forwarder:
    """Queues pushes and sends them upstream one at a time, on a thread of its own."""

    def __init__(self, stats: Stats, send: Send, *, max_queued: int, timeout: float) -> None:
        self.stats = stats
        self.timeout = timeout
        self.queue: deque[Push] = deque()
        self._send = send
        self._max_queued = max_queued
        self._cond = native.Condition()  # real, even in a monkey-patched app
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
            if len(self.queue) >= self._max_queued:
                self.queue.popleft()
                self.stats.dropped += 1
                if self.stats.dropped == 1:
                    log.debug("relay: the profile backend is not keeping up: oldest push dropped")
            self.queue.append(push)
            self._cond.notify_all()

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
        try:
            status = self._send(push.target, push.headers, push.body, self.timeout)
        except Exception as exc:  # the network, in all its forms: counted, never raised
            self.stats.failed += 1
            log.debug(f"relay: push not forwarded: {type(exc).__name__}")
            return
        finally:
            self.stats.cpu_seconds += time.thread_time() - started
        if 200 <= status < 300:
            self.stats.forwarded += 1
        else:
            self.stats.failed += 1
            log.debug(f"relay: push not forwarded: HTTP {status}")


def post(url: str, headers: list[tuple[str, str]], body: bytes, timeout: float) -> int:
    """POST ``body`` to ``url``; the HTTP status (errors answered by the server included).

    ``http.client``, not urllib: importing ``urllib.request`` (at exit, maybe) would load
    OpenTelemetry's urllib instrumentation in the middle of the app's shutdown.  The
    request runs with OpenTelemetry's instrumentation suppressed all the same: the
    relay's own requests are not the app's and must never become its spans.
    """
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(parts.netloc.rpartition("@")[2], timeout=timeout)
    connection._create_connection = native.create_connection  # type: ignore[attr-defined]
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    token = _suppress_instrumentation()
    try:
        connection.putrequest("POST", target, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        response.read()
        return int(response.status)
    finally:
        connection.close()
        _restore_instrumentation(token)


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
