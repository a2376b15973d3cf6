"""An in-process HTTP receiver for Pyroscope pushes and OTLP/HTTP exports.

:class:`Receiver` runs a ``ThreadingHTTPServer`` on 127.0.0.1 in a daemon thread and
accepts:

* ``POST /push.v1.PusherService/Push`` - what pyroscope-io (pyroscope-rs) sends
  (Connect unary, ``application/proto``, gzip); answered with an empty ``PushResponse``.
* ``POST /v1/traces`` - OTLP/HTTP traces, protobuf or JSON; answered with an empty
  ``ExportTraceServiceResponse`` in the request's format.
* ``POST /v1/metrics`` and ``POST /v1/logs`` - accepted and counted, not decoded.
* ``GET`` / ``HEAD`` of any other path - answered by the optional ``pages`` handler (the
  local mode's live page), 404 without one.

Decoded data is kept in memory (``.profiles``, ``.spans``, ``.requests``; off with
``keep_in_memory=False`` for a long-running receiver) and handed to the ``on_profiles`` /
``on_spans`` callbacks, so a storage layer can subscribe.  Bad requests get a 4xx with a
short text body and never take the server down; nothing is logged per request.
"""

from __future__ import annotations

import dataclasses
import http.server
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Final, TypeVar, cast

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from pyrospan_launch.receiver import schemas
from pyrospan_launch.receiver.body import MAX_DECOMPRESSED_BYTES, is_json_content_type
from pyrospan_launch.receiver.profiles import decode_push
from pyrospan_launch.receiver.records import (
    DecodeError,
    ProfileSample,
    ProfileSeries,
    ReceivedSpan,
    RequestInfo,
)
from pyrospan_launch.receiver.traces import decode_otlp_traces

__all__ = [
    "LOGS_PATH",
    "MAX_BODY_BYTES",
    "METRICS_PATH",
    "PUSH_PATH",
    "TRACES_PATH",
    "PageHandler",
    "ProfilesCallback",
    "Receiver",
    "SpansCallback",
]

_log = logging.getLogger(__name__)

PUSH_PATH: Final = "/push.v1.PusherService/Push"
TRACES_PATH: Final = "/v1/traces"
METRICS_PATH: Final = "/v1/metrics"
LOGS_PATH: Final = "/v1/logs"

#: Default cap on a request's Content-Length.
MAX_BODY_BYTES: Final = 32 * 1024 * 1024

_ROUTES: Final = frozenset({PUSH_PATH, TRACES_PATH, METRICS_PATH, LOGS_PATH})

_T = TypeVar("_T")

ProfilesCallback = Callable[[list[ProfileSeries]], None]
SpansCallback = Callable[[list[ReceivedSpan]], None]
#: Answers a GET of a path the receiver does not own: (request target, Host header) ->
#: (status, body, content type).
PageHandler = Callable[[str, str], tuple[int, bytes, str]]

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


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], receiver: Receiver) -> None:
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
    def receiver(self) -> Receiver:
        return cast(_Server, self.server).receiver

    def setup(self) -> None:
        super().setup()
        # A client that stalls mid-request must not pin a handler thread forever.
        self.connection.settimeout(self.receiver.request_timeout)

    # -- quiet
    def log_message(self, format: str, *args: object) -> None:
        _log.debug("receiver: " + format, *args)

    # -- methods
    def do_POST(self) -> None:
        self._handle("POST")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

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
        seq = receiver._next_seq()
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
                status, payload, content_type = receiver._dispatch(
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
            receiver._record_request(
                self._info(seq, method, path, 499, started, content_length, repr(exc)[:200])
            )
            self.close_connection = True
            return
        except Exception as exc:
            status, error = 500, f"internal error: {type(exc).__name__}"
            _log.debug("receiver: internal error on %s", path, exc_info=True)
            receiver._note_error(f"{path}: {exc!r}")
        if close:
            error = error or "error"
            payload, content_type = (error + "\n").encode(), "text/plain; charset=utf-8"
        # Record first, so a client holding its answer always finds its request recorded.
        receiver._record_request(
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


class Receiver:
    """In-memory receiver for Pyroscope pushes and OTLP/HTTP exports, for tests and tools.

    Use as a context manager::

        with Receiver() as r:
            run_program(pyroscope_server=r.url, otlp_endpoint=r.url)
            assert r.wait_for(lambda r: r.samples_with_label("span_id", sid), timeout=10)

    All public attributes that return lists return snapshots; they are safe to read from
    any thread.  Callbacks in ``on_profiles`` / ``on_spans`` run on the request's handler
    thread after the data is stored; an exception in one is recorded in ``.errors`` and
    does not change the HTTP answer.

    ``keep_in_memory=False`` keeps nothing in memory (``.profiles``, ``.spans`` and
    ``.requests`` stay empty; counts are kept), for a long-running receiver whose callbacks
    store the data elsewhere.  ``pages`` answers GET requests of other paths.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_decompressed_bytes: int = MAX_DECOMPRESSED_BYTES,
        request_timeout: float = 10.0,
        on_profiles: Iterable[ProfilesCallback] = (),
        on_spans: Iterable[SpansCallback] = (),
        keep_in_memory: bool = True,
        pages: PageHandler | None = None,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.max_body_bytes = max_body_bytes
        self.max_decompressed_bytes = max_decompressed_bytes
        self.request_timeout = request_timeout
        self.on_profiles: list[ProfilesCallback] = list(on_profiles)
        self.on_spans: list[SpansCallback] = list(on_spans)
        self.keep_in_memory = keep_in_memory
        self.pages = pages
        self._cond = threading.Condition()  # RLock inside: predicates may re-enter
        self._profiles: list[ProfileSeries] = []
        self._spans: list[ReceivedSpan] = []
        self._requests: list[RequestInfo] = []
        self._errors: list[str] = []
        self._counts: dict[str, int] = {}
        self._seq = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Receiver:
        """Bind and serve in a daemon thread; returns ``self``."""
        with self._cond:
            if self._server is not None or self._stopped:
                raise RuntimeError("Receiver can only be started once")
            self._server = _Server((self.host, self.requested_port), self)
            server = self._server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"pyrospan-receiver-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop serving and close the socket; waits at most about ``timeout`` seconds."""
        with self._cond:
            server, thread = self._server, self._thread
            if self._stopped or server is None:
                self._stopped = True
                return
            self._stopped = True
        # BaseServer.shutdown() waits without a timeout; bound it with a helper thread.
        deadline = time.monotonic() + timeout
        stopper = threading.Thread(target=server.shutdown, name="receiver-stop", daemon=True)
        stopper.start()
        stopper.join(timeout)
        server.server_close()
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            self._cond.notify_all()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._server is not None and not self._stopped

    @property
    def port(self) -> int:
        """The bound TCP port (only after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("Receiver is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (pyroscope ``server_address``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def traces_endpoint(self) -> str:
        """``url + "/v1/traces"``, for ``OTLPSpanExporter(endpoint=...)``."""
        return self.url + TRACES_PATH

    @property
    def push_endpoint(self) -> str:
        """``url + "/push.v1.PusherService/Push"``."""
        return self.url + PUSH_PATH

    # ------------------------------------------------------------------ stored data

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

    def wait_for(self, predicate: Callable[[Receiver], object], timeout: float) -> bool:
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

    # ------------------------------------------------------------------ internals

    def _note_error(self, message: str) -> None:
        with self._cond:
            self._errors.append(message[:500])
            self._cond.notify_all()

    def _next_seq(self) -> int:
        with self._cond:
            self._seq += 1
            return self._seq

    def _record_request(self, info: RequestInfo) -> None:
        with self._cond:
            if self.keep_in_memory:
                self._requests.append(info)
            self._cond.notify_all()

    def _dispatch(
        self,
        path: str,
        body: bytes,
        content_type: str | None,
        content_encoding: str | None,
        info: RequestInfo,
    ) -> tuple[int, bytes, str]:
        """Decode and store one request body; returns (status, body, content type)."""
        if path == PUSH_PATH:
            if is_json_content_type(content_type):
                raise DecodeError("only application/proto pushes are supported", 415)
            series = decode_push(
                body, content_encoding, max_decompressed_bytes=self.max_decompressed_bytes
            )
            series = [dataclasses.replace(s, request=info) for s in series]
            with self._cond:
                if self.keep_in_memory:
                    self._profiles.extend(series)
                self._counts[path] = self._counts.get(path, 0) + 1
                callbacks: list[ProfilesCallback] = list(self.on_profiles)
            self._run_callbacks(callbacks, series)
            return 200, schemas.PushResponse().SerializeToString(), "application/proto"

        as_json = is_json_content_type(content_type)
        if path == TRACES_PATH:
            spans = decode_otlp_traces(
                body,
                content_type,
                content_encoding,
                max_decompressed_bytes=self.max_decompressed_bytes,
            )
            with self._cond:
                if self.keep_in_memory:
                    self._spans.extend(spans)
                self._counts[path] = self._counts.get(path, 0) + 1
                span_callbacks: list[SpansCallback] = list(self.on_spans)
            self._run_callbacks(span_callbacks, spans)
            empty = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        else:
            with self._cond:
                self._counts[path] = self._counts.get(path, 0) + 1
            if path == METRICS_PATH:
                empty = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
            else:
                empty = logs_service_pb2.ExportLogsServiceResponse().SerializeToString()
        if as_json:
            return 200, b"{}", "application/json"
        return 200, empty, "application/x-protobuf"

    def _run_callbacks(
        self,
        callbacks: list[Callable[[list[_T]], None]],
        items: list[_T],
    ) -> None:
        for callback in callbacks:
            try:
                callback(list(items))
            except Exception as exc:
                self._note_error(f"callback {getattr(callback, '__name__', callback)!r}: {exc!r}")
        with self._cond:
            self._cond.notify_all()
