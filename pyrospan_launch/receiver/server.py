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

Decoded data is handed to the ``on_profiles`` / ``on_spans`` callbacks, so a storage
layer can subscribe (local mode's, with ``keep_in_memory=False``), and kept in memory
for the queries of :mod:`~pyrospan_launch.receiver.recorded` otherwise.  HTTP itself is
:mod:`~pyrospan_launch.receiver.handler`'s.
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

from pyrospan_launch.receiver import schemas
from pyrospan_launch.receiver.body import MAX_DECOMPRESSED_BYTES, is_json_content_type
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
from pyrospan_launch.receiver.recorded import RecordedData
from pyrospan_launch.receiver.records import (
    DecodeError,
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


_T = TypeVar("_T")

ProfilesCallback = Callable[[list[ProfileSeries]], None]
SpansCallback = Callable[[list[ReceivedSpan]], None]


class Receiver(RecordedData):
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
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Receiver:
        """Bind and serve in a daemon thread; returns ``self``."""
        with self._cond:
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

    # ------------------------------------------------------------------ internals

    def note_error(self, message: str) -> None:
        """Keep an internal error or a callback failure (not a client error)."""
        with self._cond:
            self._errors.append(message[:500])
            self._cond.notify_all()

    def next_seq(self) -> int:
        """The number of the next request."""
        with self._cond:
            self._seq += 1
            return self._seq

    def record_request(self, info: RequestInfo) -> None:
        """Keep one handled request (when keeping in memory) and wake the waiters."""
        with self._cond:
            if self.keep_in_memory:
                self._requests.append(info)
            self._cond.notify_all()

    def dispatch(
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
                self.note_error(f"callback {getattr(callback, '__name__', callback)!r}: {exc!r}")
        with self._cond:
            self._cond.notify_all()
