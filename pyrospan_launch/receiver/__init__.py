"""A small in-process receiver for Pyroscope profiles and OTLP/HTTP traces.

It stands in for a Pyroscope server and an OpenTelemetry collector and hands what a
profiled, traced program sent to its subscribers (local mode's store)::

    from pyrospan_launch.receiver import Receiver

    with Receiver(on_profiles=[store.add_profiles], on_spans=[store.add_spans]) as r:
        # pyroscope.configure(server_address=r.url, ...)
        # OTLPSpanExporter(endpoint=r.traces_endpoint)
        ...

It keeps nothing itself; the tests' ``RecordingReceiver`` (``tests/recording_receiver.py``)
is a subclass that keeps everything and answers queries about it.

Modules:

* :mod:`~pyrospan_launch.receiver.schemas` - protobuf classes for ``push.v1`` and pprof,
  built at runtime from descriptors.
* :mod:`~pyrospan_launch.receiver.records` - what requests decode into, and DecodeError.
* :mod:`~pyrospan_launch.receiver.body` - content encodings within a size cap, media types.
* :mod:`~pyrospan_launch.receiver.profiles` - Pyroscope push and pprof decoding.
* :mod:`~pyrospan_launch.receiver.traces` - OTLP/HTTP traces decoding.
* :mod:`~pyrospan_launch.receiver.server` - the threaded HTTP :class:`Receiver`.
"""

from __future__ import annotations

from pyrospan_launch.receiver.body import MAX_DECOMPRESSED_BYTES, decompress_body
from pyrospan_launch.receiver.profiles import decode_pprof, decode_push
from pyrospan_launch.receiver.records import (
    DecodeError,
    Frame,
    ProfileSample,
    ProfileSeries,
    ReceivedSpan,
    RequestInfo,
)
from pyrospan_launch.receiver.server import (
    LOGS_PATH,
    MAX_BODY_BYTES,
    METRICS_PATH,
    PUSH_PATH,
    TRACES_PATH,
    PageHandler,
    ProfilesCallback,
    Receiver,
    RequestsCallback,
    SpansCallback,
)
from pyrospan_launch.receiver.traces import decode_otlp_traces, flatten_any_value

__all__ = [
    "LOGS_PATH",
    "MAX_BODY_BYTES",
    "MAX_DECOMPRESSED_BYTES",
    "METRICS_PATH",
    "PUSH_PATH",
    "TRACES_PATH",
    "DecodeError",
    "Frame",
    "PageHandler",
    "ProfileSample",
    "ProfileSeries",
    "ProfilesCallback",
    "ReceivedSpan",
    "Receiver",
    "RequestInfo",
    "RequestsCallback",
    "SpansCallback",
    "decode_otlp_traces",
    "decode_pprof",
    "decode_push",
    "decompress_body",
    "flatten_any_value",
]
