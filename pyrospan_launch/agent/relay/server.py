"""The relay: a loopback HTTP server that pyroscope-io pushes to, forwarding to the real server.

pyroscope-io is pointed at ``http://127.0.0.1:<port>`` with one extra HTTP header, this
process's random token.  Each push is checked (method, path, token, size, time to read
it), its pprof profiles rewritten (:mod:`pyrospan_launch.agent.relay.rewrite`), and queued; a
forwarder thread sends it on to the configured server with the request's own path,
query string and headers (basic auth, ``X-Scope-OrgID``, the user's headers), less the
token.  The push is answered at once, so pyroscope-io never waits for the backend.

A backend that is down or never answers costs no memory: the queue holds at most
:data:`MAX_QUEUED` pushes, the oldest is dropped (and counted) to make room.  Nothing the
relay says names a header, a credential or an upstream answer's text.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable

from pyrospan_launch.common import log

# Nothing costly at start-up: the HTTP and protobuf machinery loads with the first push
# (the relay starts with the profiler, before the app), and typing only for type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TOKEN_HEADER = "X-Pyrospan-Relay"
PUSH_PATH = "/push.v1.PusherService/Push"

# A push larger than this is refused: pyroscope-io's pushes of a 10 s window of a busy
# service are well under 1 MiB.
MAX_BODY = 16 * 1024 * 1024
# What a push may decompress to while it is rewritten.
MAX_DECOMPRESSED = 64 * 1024 * 1024
# Seconds a client may take to send its request (a stalled local client holds nothing).
READ_TIMEOUT = 5.0
# Seconds a kept-alive connection may wait for its next request: longer than the default
# upload interval (10 s), so pyroscope-io's connection is not closed under it between
# pushes (a push sent just as the relay closes the connection could be lost).
IDLE_TIMEOUT = 30.0
# Seconds one forward may take (pyroscope-io's own HTTP timeout is 10 s).
FORWARD_TIMEOUT = 10.0
# Pushes waiting for the backend at most; each is one upload window.
MAX_QUEUED = 8
# Connections served at once; more wait in the listen backlog.
MAX_CONNECTIONS = 8

# Headers that belong to one hop, not to the push.
_HOP_HEADERS = frozenset(
    ("host", "content-length", "connection", "keep-alive", "transfer-encoding", "te", "upgrade")
)


class Stats:
    """What the relay did, for debug lines, --info and tests."""

    def __init__(self) -> None:
        self.received = 0
        self.rejected = 0
        self.forwarded = 0
        self.failed = 0
        self.dropped = 0  # oldest pushes dropped while the backend was slow or down
        self.cpu_seconds = 0.0  # thread CPU spent reading, rewriting and forwarding pushes

    def summary(self) -> str:
        """One line for debug output."""
        return (
            f"{self.received} pushes received, {self.forwarded} forwarded, {self.failed} "
            f"failed, {self.dropped} dropped, {self.rejected} requests refused; "
            f"{self.cpu_seconds * 1000:.1f} ms of CPU"
        )


class _Push:
    __slots__ = ("body", "headers", "target")

    def __init__(self, target: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.target = target
        self.headers = headers
        self.body = body


class Relay:
    """One process's relay; :meth:`start` binds it, :attr:`address` is what pyroscope-io gets."""

    def __init__(
        self,
        upstream: str,
        *,
        host: str = "127.0.0.1",
        max_body: int = MAX_BODY,
        max_queued: int = MAX_QUEUED,
        forward_timeout: float = FORWARD_TIMEOUT,
        send: Callable[[str, list[tuple[str, str]], bytes, float], int] | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.host = host
        self.max_body = max_body
        self.forward_timeout = forward_timeout
        self.token = _new_token()
        self.stats = Stats()
        self._send = send or _post
        self._queue: deque[_Push] = deque()
        self._max_queued = max_queued
        self._cond = threading.Condition()
        self._busy = False
        self._socket: socket.socket | None = None
        self._closed = False
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        # False until this process made a marker frame: until then pushes pass unparsed.
        self.markers_possible = False

    def warm_up(self) -> None:
        """Say marker frames may come, and load what rewriting them needs, now.

        Called when span linking starts, inside OpenTelemetry's own start (most of what it
        loads, protobuf above all, the OTLP exporter has loaded already).  Not later, in
        the exit flush: module code run while the interpreter finalizes (namedtuple,
        dataclasses) makes an uncaught KeyboardInterrupt exit with status 1 instead of
        dying of SIGINT.  Not on a thread of its own: a fork while it imports would leave
        the child a module lock that no thread of the child will ever release.
        """
        if self.markers_possible:
            return
        self.markers_possible = True
        _preload()

    # -- life --------------------------------------------------------------------------
    def start(self) -> None:
        """Bind to the loopback interface and start the accepting and forwarding threads."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.bind((self.host, 0))
            listener.listen(16)
        except BaseException:
            listener.close()
            raise
        self._socket = listener
        self._closed = False
        threading.Thread(
            target=self._accept_loop, args=(listener,), name="pyrospan-relay", daemon=True
        ).start()
        threading.Thread(
            target=self._forward_loop, name="pyrospan-relay-forward", daemon=True
        ).start()
        log.debug(f"relay listening on {self.address}")

    @property
    def address(self) -> str:
        """``http://127.0.0.1:<port>``: where pyroscope-io pushes."""
        assert self._socket is not None, "relay not started"
        host, port = self._socket.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    @property
    def running(self) -> bool:
        """True while the relay serves."""
        return self._socket is not None and not self._closed

    def restart_in_child(self) -> None:
        """In a forked child: a relay of its own, with none of the parent's pushes or threads."""
        old = self._socket
        if old is not None:
            with contextlib.suppress(OSError):
                old.close()  # the parent's listening socket, inherited: the parent's to use
        self._cond = threading.Condition()
        self._queue = deque()
        self._busy = False
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.token = _new_token()
        self.stats = Stats()
        self._socket = None
        self.start()

    def close(self) -> None:
        """Stop accepting pushes (queued ones are left to :meth:`drain`)."""
        self._closed = True
        listener = self._socket
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued push was forwarded; False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    # -- receiving ---------------------------------------------------------------------
    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # closed (at exit, or the parent's socket in a forked child)
            slots = self._slots
            if not slots.acquire(timeout=READ_TIMEOUT):
                connection.close()  # every slot held by clients that do not send
                continue
            threading.Thread(
                target=self._serve,
                args=(connection, slots),
                name="pyrospan-relay-conn",
                daemon=True,
            ).start()

    def _serve(self, connection: socket.socket, slots: threading.BoundedSemaphore) -> None:
        """Answer the requests of one connection (pyroscope-io keeps it open between pushes)."""
        import http.client

        try:
            reader = connection.makefile("rb")
            while True:
                connection.settimeout(IDLE_TIMEOUT)
                line = reader.readline(_MAX_LINE + 1)
                if not line:
                    return
                connection.settimeout(READ_TIMEOUT)
                parts = line.decode("latin-1").split()
                if len(line) > _MAX_LINE or len(parts) != 3:
                    self.stats.rejected += 1
                    connection.sendall(_answer(400, keep_alive=False))
                    return
                method, target, version = parts
                headers = http.client.parse_headers(reader)
                started = time.thread_time()
                status = self.accept(method, target, headers, reader)
                self.stats.cpu_seconds += time.thread_time() - started
                keep_alive = (
                    status == 200
                    and version == "HTTP/1.1"
                    and (headers.get("Connection") or "").lower() != "close"
                )
                connection.sendall(_answer(status, keep_alive))
                if not keep_alive:
                    return
        except (OSError, ValueError, http.client.HTTPException) as exc:
            # A client that stalled, left or sent nonsense: never the app's problem.
            log.debug(f"relay: connection ended: {type(exc).__name__}")
        finally:
            slots.release()
            with contextlib.suppress(OSError):
                connection.close()

    def accept(self, method: str, target: str, headers: Any, body: Any) -> int:
        """Check, read, rewrite and queue one request; the HTTP status to answer.

        ``headers`` is the request's ``http.client.HTTPMessage``, ``body`` the stream its
        body is read from.
        """
        import hmac

        path = target.split("?", 1)[0]
        if self._closed or path != PUSH_PATH:
            self.stats.rejected += 1
            return 404
        if method != "POST":
            self.stats.rejected += 1
            return 405
        token = headers.get(TOKEN_HEADER) or ""
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            self.stats.rejected += 1
            return 403
        length_text = headers.get("Content-Length")
        if length_text is None or not length_text.isdigit() or headers.get("Transfer-Encoding"):
            self.stats.rejected += 1
            return 411
        length = int(length_text)
        if length > self.max_body:
            self.stats.rejected += 1
            return 413
        data: bytes = body.read(length)
        if len(data) != length:
            self.stats.rejected += 1
            return 400
        self.stats.received += 1
        if self.markers_possible:
            from pyrospan_launch.agent.relay.rewrite import rewrite_push
            from pyrospan_launch.receiver.records import DecodeError

            try:
                data = rewrite_push(data, headers.get("Content-Encoding"), MAX_DECOMPRESSED)
            except DecodeError as exc:
                # Forwarding it as it came could send marker frames out: drop it.
                self.stats.failed += 1
                log.debug(f"relay: push dropped, it does not decode: {exc}")
                return 400
        # The upstream as it is now: a push sent before the app's own configure() replaced
        # the server goes where it was meant to.
        self._enqueue(_Push(self.upstream + target, forwarded_headers(headers), data))
        return 200

    def _enqueue(self, push: _Push) -> None:
        with self._cond:
            if len(self._queue) >= self._max_queued:
                self._queue.popleft()
                self.stats.dropped += 1
                if self.stats.dropped == 1:
                    log.debug("relay: the profile backend is not keeping up: oldest push dropped")
            self._queue.append(push)
            self._cond.notify_all()

    # -- forwarding --------------------------------------------------------------------
    def _forward_loop(self) -> None:
        cond = self._cond  # a forked child replaces it and starts its own loop
        while True:
            with cond:
                while not self._queue:
                    if cond is not self._cond:
                        return
                    cond.wait(1.0)
                push = self._queue.popleft()
                self._busy = True
            try:
                self._forward(push)
            finally:
                with cond:
                    self._busy = False
                    cond.notify_all()

    def _forward(self, push: _Push) -> None:
        started = time.thread_time()
        try:
            self._forward_once(push)
        finally:
            self.stats.cpu_seconds += time.thread_time() - started

    def _forward_once(self, push: _Push) -> None:
        try:
            status = self._send(push.target, push.headers, push.body, self.forward_timeout)
        except Exception as exc:  # the network, in all its forms: counted, never raised
            self.stats.failed += 1
            log.debug(f"relay: push not forwarded: {type(exc).__name__}")
            return
        if 200 <= status < 300:
            self.stats.forwarded += 1
        else:
            self.stats.failed += 1
            log.debug(f"relay: push not forwarded: HTTP {status}")


def _preload() -> None:
    try:
        import hmac  # noqa: F401
        import http.client  # noqa: F401
        import ssl  # noqa: F401

        from pyrospan_launch.agent.relay.rewrite import rewrite_push  # noqa: F401
    except Exception as exc:
        log.debug(f"relay: could not load its rewrite: {type(exc).__name__}: {exc}")


def _new_token() -> str:
    return os.urandom(16).hex()


_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
}
_MAX_LINE = 8192


def _answer(status: int, keep_alive: bool) -> bytes:
    closing = "" if keep_alive else "Connection: close\r\n"
    return (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/proto\r\n"
        f"Content-Length: 0\r\n{closing}\r\n"
    ).encode("latin-1")


def _post(url: str, headers: list[tuple[str, str]], body: bytes, timeout: float) -> int:
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


def forwarded_headers(headers: Any) -> list[tuple[str, str]]:
    """The request headers a relay passes on (for tests): all but hop headers and the token."""
    return [
        (name, value)
        for name, value in headers.items()
        if name.lower() not in _HOP_HEADERS and name.lower() != TOKEN_HEADER.lower()
    ]
