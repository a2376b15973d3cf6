"""The receiver's HTTP side: read a request within its limits, route it, answer it.

The handler knows nothing of decoding or storing: it hands each body to the
:class:`Sink` the server was made with (the :class:`~pyrospan_launch.receiver.server.Receiver`).
Bad requests get a 4xx with a short text body and never take the server down; nothing
is logged per request.
"""

from __future__ import annotations

import http.server
import logging
import socket
import time
from collections.abc import Callable
from typing import Final, Protocol, cast

from pyrospan_launch.receiver.records import RequestInfo
from pyrospan_launch.wire.errors import DecodeError

_log = logging.getLogger("pyrospan_launch.receiver.server")

PUSH_PATH: Final = "/push.v1.PusherService/Push"
TRACES_PATH: Final = "/v1/traces"
METRICS_PATH: Final = "/v1/metrics"
LOGS_PATH: Final = "/v1/logs"

#: Default cap on a request's Content-Length.
MAX_BODY_BYTES: Final = 32 * 1024 * 1024

_ROUTES: Final = frozenset({PUSH_PATH, TRACES_PATH, METRICS_PATH, LOGS_PATH})

#: Answers a GET of a path the receiver does not own: (request target, Host header) ->
#: (status, body, content type).
PageHandler = Callable[[str, str], tuple[int, bytes, str]]


class Sink(Protocol):
    """What the handler needs of the receiver it serves."""

    request_timeout: float
    max_body_bytes: int
    pages: PageHandler | None

    def next_seq(self) -> int: ...

    def dispatch(
        self,
        path: str,
        body: bytes,
        content_type: str | None,
        content_encoding: str | None,
        info: RequestInfo,
    ) -> tuple[int, bytes, str]: ...

    def record_request(self, info: RequestInfo) -> None: ...

    def note_error(self, message: str) -> None: ...


# Sent with every page answer: no MIME sniffing, nothing cached, no referrer leaks.
_PAGE_HEADERS: Final = (
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
)


class _HTTPError(Exception):
    """Internal: answer with ``status`` and a short text, then close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Server(http.server.ThreadingHTTPServer):
    """A threaded HTTP server whose handlers hand bodies to ``receiver``."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], receiver: Sink) -> None:
        self.receiver = receiver
        super().__init__(address, _Handler)

    def handle_error(
        self,
        request: socket.socket | tuple[bytes, socket.socket],
        client_address: tuple[str, int] | str,
    ) -> None:
        # The default prints a traceback to stderr; a dropped connection is not news.
        _log.debug("receiver: error serving %s", client_address, exc_info=True)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pyrospan-receiver"
    sys_version = ""

    @property
    def receiver(self) -> Sink:
        return cast(Server, self.server).receiver

    def setup(self) -> None:
        super().setup()
        # A client that stalls mid-request must not pin a handler thread forever.
        self.connection.settimeout(self.receiver.request_timeout)

    # -- quiet
    def log_message(self, format: str, *args: object) -> None:
        _log.debug("receiver: " + format, *args)

    # -- methods
    def do_POST(self) -> None:
        self._handle(self.command)

    def __getattr__(self, name: str) -> Callable[[], None]:
        # Every method reaches the routing below, which refuses what a path does not take
        # (404 or 405), where http.server would answer 501; the relay does the same.
        if name.startswith("do_"):
            return self.do_POST
        raise AttributeError(name)

    def handle_expect_100(self) -> bool:
        # Refuse an oversize upload before the client sends it.
        length = self.headers.get("Content-Length", "")
        if length.strip().isdigit() and int(length) > self.receiver.max_body_bytes:
            self._send(413, b"request body too large\n", "text/plain; charset=utf-8", close=True)
            return False
        return super().handle_expect_100()

    # -- helpers
    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        *,
        close: bool,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise _HTTPError(411, "chunked bodies are not supported; send Content-Length")
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            raise _HTTPError(411, "Content-Length required")
        raw_length = raw_length.strip()
        if not raw_length.isdigit():
            raise _HTTPError(400, "bad Content-Length")
        length = int(raw_length)
        if length > self.receiver.max_body_bytes:
            raise _HTTPError(413, f"request body too large (limit {self.receiver.max_body_bytes})")
        body = self.rfile.read(length)
        if len(body) != length:
            raise _HTTPError(400, "request body shorter than Content-Length")
        return body

    def _handle(self, method: str) -> None:
        receiver = self.receiver
        path = self.path.split("?", 1)[0]
        started = time.time()
        seq = receiver.next_seq()
        error = ""
        content_length = 0
        status, close = 500, True
        payload, content_type = b"", "text/plain; charset=utf-8"
        extra_headers: tuple[tuple[str, str], ...] = ()
        try:
            if path not in _ROUTES and method in ("GET", "HEAD") and receiver.pages is not None:
                if self.headers.get("Content-Length", "0").strip() not in ("", "0"):
                    # An unread body would be parsed as the next request on this connection.
                    raise _HTTPError(400, "GET with a body")
                status, payload, content_type = receiver.pages(
                    self.path, self.headers.get("Host", "")
                )
                extra_headers, close = _PAGE_HEADERS, False
            elif path not in _ROUTES:
                raise _HTTPError(404, "not found")
            elif method != "POST":
                raise _HTTPError(405, "method not allowed")
            else:
                body = self._read_body()
                content_length = len(body)
                status, payload, content_type = receiver.dispatch(
                    path,
                    body,
                    self.headers.get("Content-Type"),
                    self.headers.get("Content-Encoding"),
                    self._info(seq, method, path, 200, started, content_length, ""),
                )
                close = False
        except _HTTPError as exc:
            status, error = exc.status, exc.message
        except DecodeError as exc:
            status, error = exc.http_status, str(exc)[:200]
        except (OSError, TimeoutError) as exc:
            # The client went away or stalled mid-request; there is no one to answer.
            receiver.record_request(
                self._info(seq, method, path, 499, started, content_length, repr(exc)[:200])
            )
            self.close_connection = True
            return
        except Exception as exc:
            status, error = 500, f"internal error: {type(exc).__name__}"
            _log.debug("receiver: internal error on %s", path, exc_info=True)
            receiver.note_error(f"{path}: {exc!r}")
        if close:
            error = error or "error"
            payload, content_type = (error + "\n").encode(), "text/plain; charset=utf-8"
        # Hand the request on first, so a client holding its answer finds it recorded.
        receiver.record_request(
            self._info(seq, method, path, status, started, content_length, error)
        )
        try:
            self._send(status, payload, content_type, close=close, headers=extra_headers)
        except OSError:
            self.close_connection = True

    def _info(
        self,
        seq: int,
        method: str,
        path: str,
        status: int,
        started: float,
        length: int,
        error: str,
    ) -> RequestInfo:
        headers = self.headers
        return RequestInfo(
            seq=seq,
            received_at=started,
            method=method,
            path=path,
            status=status,
            user_agent=headers.get("User-Agent", ""),
            has_authorization=bool(headers.get("Authorization")),
            tenant_id=headers.get("X-Scope-OrgID", ""),
            content_type=headers.get("Content-Type", ""),
            content_encoding=headers.get("Content-Encoding", ""),
            content_length=length,
            error=error,
        )
