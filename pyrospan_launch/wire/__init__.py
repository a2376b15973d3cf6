"""The formats the agent's relay and local mode's receiver both speak.

Neither side imports the other: both import this package (docs/design.md, the layers).

* :mod:`~pyrospan_launch.wire.schemas` - protobuf classes for ``push.v1`` and pprof.
* :mod:`~pyrospan_launch.wire.body` - content encodings within a size cap, media types,
  protobuf parsing.
* :mod:`~pyrospan_launch.wire.errors` - :class:`DecodeError`, with the HTTP status to answer.
* :mod:`~pyrospan_launch.wire.names` - the sample-label and span-attribute names.
"""
