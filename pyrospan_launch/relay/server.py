"""The relay: a loopback HTTP server that pyroscope-io pushes to, forwarding to the real server.

pyroscope-io is pointed at ``http://127.0.0.1:<port>`` with one extra HTTP header, this
process's random token.  Each push is checked (method, path, token, size, time to read
it), its pprof profiles rewritten (:mod:`pyrospan_launch.relay.rewrite`), and queued; a
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

from pyrospan_launch import log

# Nothing costly at start-up: the HTTP and protobuf machinery loads with the first push
# (the relay starts with the profiler, before the app), and typing only for type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler
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
# Seconds one forward may take (pyroscope-io's own HTTP timeout is 10 s).
FORWARD_TIMEOUT = 10.0
# Pushes waiting for the backend at most; each is one upload window.
MAX_QUEUED = 8
# Connections served at once; more wait in the listen backlog.
MAX_CONNECTIONS = 4

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
        self.cpu_seconds = 0.0  # thread CPU spent reading and rewriting pushes


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
            if not self._slots.acquire(timeout=READ_TIMEOUT):
                connection.close()  # every slot held by clients that do not send
                continue
            threading.Thread(
                target=self._serve, args=(connection,), name="pyrospan-relay-conn", daemon=True
            ).start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            connection.settimeout(READ_TIMEOUT)
            handler_class = _handler_class()
            handler_class(connection, ("127.0.0.1", 0), self)
        except Exception as exc:  # never let a client's mistake reach the app
            log.debug(f"relay: connection ended: {type(exc).__name__}")
        finally:
            self._slots.release()
            with contextlib.suppress(OSError):
                connection.close()

    def accept(self, handler: BaseHTTPRequestHandler) -> int:
        """Check, read, rewrite and queue one request; the HTTP status to answer."""
        import hmac

        path = handler.path.split("?", 1)[0]
        if self._closed or path != PUSH_PATH:
            self.stats.rejected += 1
            return 404
        token = handler.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            self.stats.rejected += 1
            return 403
        length_text = handler.headers.get("Content-Length")
        if length_text is None or not length_text.isdigit():
            self.stats.rejected += 1
            return 411
        length = int(length_text)
        if length > self.max_body:
            self.stats.rejected += 1
            return 413
        body = handler.rfile.read(length)
        if len(body) != length:
            self.stats.rejected += 1
            return 400
        self.stats.received += 1
        from pyrospan_launch.receiver.decode import DecodeError
        from pyrospan_launch.relay.rewrite import rewrite_push

        try:
            body = rewrite_push(body, handler.headers.get("Content-Encoding"), MAX_DECOMPRESSED)
        except DecodeError as exc:
            # Forwarding it as it came would send marker frames out: drop it.
            self.stats.failed += 1
            log.debug(f"relay: push dropped, it does not decode: {exc}")
            return 400
        # The upstream as it is now: a push sent before the app's own configure() replaced
        # the server goes where it was meant to.
        target = self.upstream + handler.path
        self._enqueue(_Push(target, forwarded_headers(handler.headers), body))
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


def _new_token() -> str:
    return os.urandom(16).hex()


_HANDLER: Any = None


def _handler_class() -> Any:
    """The HTTP request handler, built on first use (http.server is costly to import)."""
    global _HANDLER
    if _HANDLER is not None:
        return _HANDLER
    from http.server import BaseHTTPRequestHandler

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server: Any

        def do_POST(self) -> None:
            relay: Relay = self.server
            started = time.thread_time()
            status = relay.accept(self)
            relay.stats.cpu_seconds += time.thread_time() - started
            self._answer(status)

        def do_GET(self) -> None:
            self.server.stats.rejected += 1
            self._answer(405)

        do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET

        def _answer(self, status: int) -> None:
            self.send_response_only(status)
            self.send_header("Content-Type", "application/proto")
            self.send_header("Content-Length", "0")
            if status != 200:
                self.close_connection = True
                self.send_header("Connection", "close")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass  # the app's stderr is not ours to fill

    _HANDLER = Handler
    return Handler


def _post(url: str, headers: list[tuple[str, str]], body: bytes, timeout: float) -> int:
    """POST ``body`` to ``url``; the HTTP status (errors answered by the server included).

    urllib, for the proxy settings the environment gives (as pyroscope-io's client
    honours them), with OpenTelemetry's instrumentation suppressed: the relay's own
    requests are not the app's and must not become its spans.
    """
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, method="POST")
    for name, value in headers:
        request.add_unredirected_header(name, value)
    with _untraced():
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
                status: int = response.status
                return status
        except urllib.error.HTTPError as exc:
            exc.close()
            return int(exc.code)


def _untraced() -> Any:
    if "opentelemetry.context" not in sys.modules:
        return contextlib.nullcontext()
    try:
        from opentelemetry.instrumentation.utils import suppress_instrumentation
    except ImportError:
        return contextlib.nullcontext()
    return suppress_instrumentation()


def forwarded_headers(headers: Any) -> list[tuple[str, str]]:
    """The request headers a relay passes on (for tests): all but hop headers and the token."""
    return [
        (name, value)
        for name, value in headers.items()
        if name.lower() not in _HOP_HEADERS and name.lower() != TOKEN_HEADER.lower()
    ]
