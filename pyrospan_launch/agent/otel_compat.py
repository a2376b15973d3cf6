"""The few places where pyrospan-run needs more of the OpenTelemetry SDK than its public API.

Each one is detected once, on the objects of the SDK in use, and has a public fallback
(or, where OpenTelemetry offers none, a clear answer of "cannot"), so that every release
in the supported range works.  See docs/design.md ("OpenTelemetry's private fields").
"""

from __future__ import annotations

import functools

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SERVICE_NAME = "service.name"


class Shortcuts:
    """Which of the SDK's private fields the span-linking hot paths may read instead of its API.

    Each flag is True only when the field exists on real objects of the SDK in use and
    gives what the public API gives; otherwise that path uses the public API.  Every root
    span and every context change pays for the public calls (figures in docs/design.md),
    which is why the shortcuts exist at all.

    * ``span_fields``: a span's ``_context``, ``_parent`` and ``_name`` (public:
      ``get_span_context()``, ``parent``, ``name``; ``context`` on an ended span);
    * ``attributes``: a new span's attribute dict, ``_attributes._dict`` with its
      ``_immutable`` flag and limits (public: ``set_attribute()``);
    * ``span_key``: the key under which a Context holds its current span (public:
      ``trace.get_current_span(context)``); None when it is not usable.
    """

    __slots__ = ("attributes", "span_fields", "span_key")

    def __init__(self, *, span_fields: bool, attributes: bool, span_key: str | None) -> None:
        self.span_fields = span_fields
        self.attributes = attributes
        self.span_key = span_key

    def __repr__(self) -> str:
        return (
            f"Shortcuts(span_fields={self.span_fields}, attributes={self.attributes}, "
            f"span_key={self.span_key is not None})"
        )


PUBLIC = Shortcuts(span_fields=False, attributes=False, span_key=None)


# A fact of the installed SDK, the same for every agent of the process: memoised, not state.
@functools.cache
def shortcuts() -> Shortcuts:
    """The shortcuts this process's SDK allows, detected once."""
    return detect()


def detect() -> Shortcuts:
    """Check each private field on a real span of the installed SDK against its public API."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    # A provider of its own, with no processor (nothing is exported), no resource detection
    # and no exit handler: a few microseconds, once per process.
    provider = TracerProvider(resource=Resource.get_empty(), shutdown_on_exit=False)
    tracer = provider.get_tracer("pyrospan-run feature check")
    parent = tracer.start_span("parent")
    span = tracer.start_span("child", context=trace.set_span_in_context(parent))
    try:
        return Shortcuts(
            span_fields=_span_fields_match(span, parent),
            attributes=_attribute_dict_usable(span),
            span_key=_span_key(span),
        )
    finally:
        span.end()
        parent.end()


def _span_fields_match(span: Any, parent: Any) -> bool:
    try:
        return bool(
            span._context is span.get_span_context()
            and span._parent is span.parent
            and span._parent.span_id == parent.get_span_context().span_id
            and span._name == span.name == "child"
        )
    except AttributeError:
        return False


def _attribute_dict_usable(span: Any) -> bool:
    try:
        attributes = span._attributes
        if not (
            type(attributes._dict) is dict
            and attributes._immutable is False
            and hasattr(attributes, "maxlen")
            and hasattr(attributes, "max_value_len")
        ):
            return False
        attributes._dict["pyrospan.check"] = "stored"  # what the public API then shows
        return bool(span.attributes.get("pyrospan.check") == "stored")
    except AttributeError:
        return False


def _span_key(span: Any) -> str | None:
    from opentelemetry import trace

    try:
        from opentelemetry.trace import propagation
    except ImportError:
        return None
    key: object = getattr(propagation, "_SPAN_KEY", None)
    if not isinstance(key, str):
        return None
    context = trace.set_span_in_context(span)
    return key if context.get(key) is span else None


def rename_service(resource: Any, name: str) -> bool:
    """Give ``resource`` the ``service.name`` ``name`` in place; False if this SDK cannot.

    A Resource is immutable in OpenTelemetry's API, yet it is the one object a
    TracerProvider shares with every tracer it handed out and every span they made, so
    replacing its attributes renames all of them at once.  No public API does that.
    The new attributes are built by the public constructor; only the assignment touches
    the SDK's field, and it is checked through the public ``attributes`` property.
    """
    from opentelemetry.sdk.resources import Resource

    if not isinstance(resource, Resource) or not hasattr(resource, "_attributes"):
        return False
    renamed = Resource({**dict(resource.attributes), SERVICE_NAME: name}, resource.schema_url)
    shared: Any = resource
    try:
        shared._attributes = renamed.attributes
    except (AttributeError, TypeError):
        return False
    return resource.attributes.get(SERVICE_NAME) == name


def make_global(trace_api: Any, provider: Any) -> bool:
    """Make ``provider`` the global TracerProvider over one already set; False if this API cannot.

    OpenTelemetry's ``set_tracer_provider`` refuses a second provider, and no public call
    replaces the first: the API's module field is set directly, then checked through
    the public ``get_tracer_provider()``.
    """
    if not hasattr(trace_api, "_TRACER_PROVIDER"):
        return False
    before = trace_api._TRACER_PROVIDER
    trace_api._TRACER_PROVIDER = provider
    if trace_api.get_tracer_provider() is provider:
        return True
    trace_api._TRACER_PROVIDER = before
    return False


def redirect_spans(ours: Any, theirs: Any) -> tuple[Any, ...] | None:
    """Send spans of ``ours``'s tracers to ``theirs``'s processors (None: drop them) instead.

    Returns the span processors ``ours`` had, for the caller to shut down, or None when
    this SDK's provider has no such pipeline (then ``ours`` keeps its own).  Tracers
    keep the provider they came from, and nothing public reaches its processors.
    """
    pipeline = getattr(ours, "_active_span_processor", None)
    if pipeline is None or not isinstance(getattr(pipeline, "_span_processors", None), tuple):
        return None
    lock = getattr(pipeline, "_lock", None)
    if lock is None:
        return None
    forward: tuple[Any, ...] = ()
    if theirs is not None:
        target = getattr(theirs, "_active_span_processor", None)
        if target is None:
            return None
        forward = (target,)
    with lock:
        replaced: tuple[Any, ...] = pipeline._span_processors
        pipeline._span_processors = forward
    return replaced
