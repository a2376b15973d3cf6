"""A small in-process receiver for Pyroscope profiles and OTLP/HTTP traces.

It stands in for a Pyroscope server and an OpenTelemetry collector and hands what a
profiled, traced program sent to its subscribers (local mode's store)::

    from pyrospan_launch.receiver.server import Receiver

    with Receiver(on_profiles=[store.add_profiles], on_spans=[store.add_spans]) as r:
        # pyroscope.configure(server_address=r.url, ...)
        # OTLPSpanExporter(endpoint=r.traces_endpoint)
        ...

It keeps nothing itself; the tests' ``RecordingReceiver`` (``tests/recording_receiver.py``)
is a subclass that keeps everything and answers queries about it.  The formats it
decodes live in :mod:`pyrospan_launch.wire`, shared with the agent's relay; this package
imports nothing on import, so loading one module does not load the server.

Modules:

* :mod:`~pyrospan_launch.receiver.records` - what requests decode into.
* :mod:`~pyrospan_launch.receiver.profiles` - Pyroscope push and pprof decoding.
* :mod:`~pyrospan_launch.receiver.traces` - OTLP/HTTP traces decoding.
* :mod:`~pyrospan_launch.receiver.handler` - HTTP requests, routed to a sink.
* :mod:`~pyrospan_launch.receiver.server` - the threaded HTTP :class:`Receiver`.
"""
