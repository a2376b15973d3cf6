"""The cheapest span linking that OpenTelemetry's SDK and pyroscope-io's tag API allow.

Not a usable design: it handles only a local root span started and ended on one thread
(no asyncio task switching, no thread-pool hand-off, no child spans, no unsampled
traces, no root span ended on another thread).  What is left is the work any linking
must do per root span: a span processor's start and end callbacks, a runtime context's
attach and detach, the ``pyroscope.profile.id`` attribute, and the four native calls
that add and remove the ``span_id`` and ``span_name`` thread tags.  Its cost per root
span is the floor under any processor built on these two APIs, and so tells whether a
target is reachable at all.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace.propagation import _SPAN_KEY

Labels = tuple[tuple[str, str], ...]


class FloorLinking:
    """A processor and a runtime context sharing one open-root map; see the module doc."""

    def __init__(self, add_tag: Any, remove_tag: Any) -> None:
        roots: dict[int, Labels] = {}
        shown = threading.local()

        class Processor(SpanProcessor):
            def on_start(self, span: Span, parent_context: Any = None) -> None:
                if span._parent is None:
                    sid = span._context.span_id
                    span_id = sid.to_bytes(8, "big").hex()
                    span._attributes._dict["pyroscope.profile.id"] = span_id
                    roots[sid] = (("span_id", span_id), ("span_name", span._name))

            def on_end(self, span: ReadableSpan) -> None:
                roots.pop(span._context.span_id, None)

        class RuntimeContext(ContextVarsRuntimeContext):
            def attach(self, context: Any) -> Any:
                token = self._current_context.set(context)
                span = context.get(_SPAN_KEY)
                labels = roots.get(span._context.span_id) if span is not None else None
                if labels is not None and getattr(shown, "labels", None) is not labels:
                    for key, value in labels:
                        add_tag(key, value)
                    shown.labels = labels
                return token

            def detach(self, token: Any) -> None:
                self._current_context.reset(token)
                labels = getattr(shown, "labels", None)
                if labels is not None:
                    for key, value in labels:
                        remove_tag(key, value)
                    shown.labels = None

        self.processor = Processor()
        self.runtime_context = RuntimeContext()
