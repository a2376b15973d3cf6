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

The receiver keeps nothing it decodes: it hands profiles and spans to the
``on_profiles`` / ``on_spans`` callbacks (local mode's store subscribes there) and each
handled request to ``on_requests``, and counts accepted requests per path.  The tests'
``RecordingReceiver`` (``tests/recording_receiver.py``) subscribes callbacks that keep
everything in memory.  HTTP itself is :mod:`~pyrospan_launch.receiver.handler`'s.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TypeVar

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from pyrospan_launch.receiver.handler import (
    LOGS_PATH,
    MAX_BODY_BYTES,
    METRICS_PATH,
    PUSH_PATH,
    TRACES_PATH,
    PageHandler,
    Server,
)
from pyrospan_launch.receiver.profiles import decode_push
from pyrospan_launch.receiver.records import ProfileSeries, ReceivedSpan, RequestInfo
from pyrospan_launch.receiver.traces import decode_otlp_traces
from pyrospan_launch.wire import schemas
from pyrospan_launch.wire.body import MAX_DECOMPRESSED_BYTES, is_json_content_type
from pyrospan_launch.wire.errors import DecodeError

__all__ = [
    "LOGS_PATH",
    "MAX_BODY_BYTES",
    "METRICS_PATH",
    "PUSH_PATH",
    "TRACES_PATH",
    "PageHandler",
    "ProfilesCallback",
    "Receiver",
    "RequestsCallback",
    "SpansCallback",
]


_T = TypeVar("_T")
_ReceiverT = TypeVar("_ReceiverT", bound="Receiver")

ProfilesCallback = Callable[[list[ProfileSeries]], None]
SpansCallback = Callable[[list[ReceivedSpan]], None]
RequestsCallback = Callable[[RequestInfo], None]


class Receiver:
    """Receiver for Pyroscope pushes and OTLP/HTTP exports that hands what it decodes on.

    Use as a context manager::

        with Receiver(on_spans=[store.add_spans]) as r:
            run_program(pyroscope_server=r.url, otlp_endpoint=r.url)

    Callbacks run on the request's handler thread: ``on_profiles`` / ``on_spans`` with the
    decoded data, then ``on_requests`` with the request's :class:`RequestInfo`, before
    the answer is sent (so a client holding its answer finds its request handed on).  An
    exception in a callback is kept in ``.errors`` and does not change the HTTP answer.
    ``pages`` answers GET requests of other paths.
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
        on_requests: Iterable[RequestsCallback] = (),
        pages: PageHandler | None = None,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.max_body_bytes = max_body_bytes
        self.max_decompressed_bytes = max_decompressed_bytes
        self.request_timeout = request_timeout
        self.on_profiles: list[ProfilesCallback] = list(on_profiles)
        self.on_spans: list[SpansCallback] = list(on_spans)
        self.on_requests: list[RequestsCallback] = list(on_requests)
        self.pages = pages
        self._lock = threading.Lock()
        self._errors: list[str] = []
        self._counts: dict[str, int] = {}
        self._seq = 0
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    # ------------------------------------------------------------------ lifecycle

    def start(self: _ReceiverT) -> _ReceiverT:
        """Bind and serve in a daemon thread; returns ``self``."""
        with self._lock:
            if self._server is not None or self._stopped:
                raise RuntimeError("Receiver can only be started once")
            self._server = Server((self.host, self.requested_port), self)
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
        with self._lock:
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

    def __enter__(self: _ReceiverT) -> _ReceiverT:
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

    # ------------------------------------------------------------------ what it saw

    @property
    def errors(self) -> list[str]:
        """Internal errors and callback failures (not client errors), oldest first."""
        with self._lock:
            return list(self._errors)

    def count(self, path: str) -> int:
        """Number of successfully handled requests to ``path`` (e.g. ``"/v1/metrics"``)."""
        with self._lock:
            return self._counts.get(path, 0)

    # ------------------------------------------------------------------ internals

    def note_error(self, message: str) -> None:
        """Keep an internal error or a callback failure (not a client error)."""
        with self._lock:
            self._errors.append(message[:500])

    def next_seq(self) -> int:
        """The number of the next request."""
        with self._lock:
            self._seq += 1
            return self._seq

    def record_request(self, info: RequestInfo) -> None:
        """Hand one handled request to the ``on_requests`` callbacks."""
        with self._lock:
            callbacks: list[RequestsCallback] = list(self.on_requests)
        for callback in callbacks:
            try:
                callback(info)
            except Exception as exc:
                self._note_callback_error(callback, exc)

    def dispatch(
        self,
        path: str,
        body: bytes,
        content_type: str | None,
        content_encoding: str | None,
        info: RequestInfo,
    ) -> tuple[int, bytes, str]:
        """Decode one request body and hand it on; returns (status, body, content type)."""
        if path == PUSH_PATH:
            if is_json_content_type(content_type):
                raise DecodeError("only application/proto pushes are supported", 415)
            series = decode_push(
                body, content_encoding, max_decompressed_bytes=self.max_decompressed_bytes
            )
            series = [dataclasses.replace(s, request=info) for s in series]
            with self._lock:
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
            with self._lock:
                self._counts[path] = self._counts.get(path, 0) + 1
                span_callbacks: list[SpansCallback] = list(self.on_spans)
            self._run_callbacks(span_callbacks, spans)
            empty = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        else:
            with self._lock:
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
        # Each callback gets its own list, so one that keeps or changes it harms no other.
        for callback in callbacks:
            try:
                callback(list(items))
            except Exception as exc:
                self._note_callback_error(callback, exc)

    def _note_callback_error(self, callback: object, exc: Exception) -> None:
        self.note_error(f"callback {getattr(callback, '__name__', callback)!r}: {exc!r}")
