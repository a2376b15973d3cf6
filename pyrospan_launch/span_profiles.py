"""Link every local root span to the CPU samples taken while it runs (Grafana's conventions).

A local root span (no parent, or a parent from another process) gets the attribute
``pyroscope.profile.id`` set to its span id, and the profiler labels the samples of the
thread running it with ``span_id`` (the same 16 hex digits) and ``span_name``.  Grafana's
"Profiles for this span" queries Pyroscope for exactly that ``span_id``.

Labels live in a per-thread stack: a root span started while another is open on the same
thread replaces its labels until it ends, so a sample never carries two ``span_id`` values.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

PROFILE_ID_ATTRIBUTE = "pyroscope.profile.id"
SPAN_ID_LABEL = "span_id"
SPAN_NAME_LABEL = "span_name"

Labels = tuple[tuple[str, str], ...]
TagFunction = Callable[[str, str], object]


class ThreadLabels:
    """The profiler labels of each thread, as a stack so nested root spans restore cleanly."""

    def __init__(self, add_tag: TagFunction, remove_tag: TagFunction) -> None:
        self._add_tag = add_tag
        self._remove_tag = remove_tag
        self._local = threading.local()

    def _stack(self) -> list[Labels]:
        stack: list[Labels] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _apply(self, labels: Labels, add: bool) -> None:
        tag = self._add_tag if add else self._remove_tag
        for key, value in labels:
            tag(key, value)

    def push(self, labels: Labels) -> None:
        """Label this thread's samples with ``labels`` until :meth:`pop`."""
        stack = self._stack()
        if stack:
            self._apply(stack[-1], add=False)
        stack.append(labels)
        self._apply(labels, add=True)

    def reapply_current(self) -> None:
        """Set this thread's current labels again (after the profiler was restarted)."""
        stack = self._stack()
        if stack:
            self._apply(stack[-1], add=True)

    def pop(self, labels: Labels) -> bool:
        """Stop labelling with ``labels``; False when this thread never pushed them."""
        stack = self._stack()
        for index in range(len(stack) - 1, -1, -1):
            if stack[index] is labels:
                break
        else:
            return False
        if index == len(stack) - 1:
            self._apply(labels, add=False)
            stack.pop()
            if stack:
                self._apply(stack[-1], add=True)
        else:
            # Ended out of order: it is not the thread's current label set, nothing to undo.
            del stack[index]
        return True


class SpanProfileProcessor(SpanProcessor):
    """Sets ``pyroscope.profile.id`` on local root spans and labels their CPU samples."""

    def __init__(self, labels: ThreadLabels, *, span_name_label: bool = True) -> None:
        self._labels = labels
        self._span_name_label = span_name_label
        self._active: dict[int, Labels] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        context = span.get_span_context()
        if not context.trace_flags.sampled:
            return  # an unsampled trace is never exported: a profile link would dangle
        parent = span.parent
        if parent is not None and not parent.is_remote:
            return
        span_id = format(context.span_id, "016x")
        span.set_attribute(PROFILE_ID_ATTRIBUTE, span_id)
        labels: Labels = ((SPAN_ID_LABEL, span_id),)
        if self._span_name_label:
            labels += ((SPAN_NAME_LABEL, span.name),)
        self._active[context.span_id] = labels
        self._labels.push(labels)

    def on_end(self, span: ReadableSpan) -> None:
        context = span.get_span_context()
        if context is None:
            return
        labels = self._active.pop(context.span_id, None)
        if labels is not None:
            self._labels.pop(labels)

    def shutdown(self) -> None:
        self._active.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
