"""Link every local root span to the CPU samples taken while it runs (Grafana's conventions).

A local root span (no parent, or a parent from another process) gets the attribute
``pyroscope.profile.id`` set to its span id, and the profiler labels samples with
``span_id`` (the same 16 hex digits) and ``span_name`` while code of that root span runs.
Grafana's "Profiles for this span" queries Pyroscope for exactly that ``span_id``.

The profiler's labels belong to OS threads, but a root span belongs to a *context*: an
asyncio task, a request handled on a thread, work handed to a thread pool.  So labels
are never pushed when a span starts; instead each thread shows the labels of the root span
of the context running on it, switched at the moments the running context changes
(:mod:`pyrospan_launch.agent.spans.span_context` for OpenTelemetry context changes,
:mod:`pyrospan_launch.agent.spans.handoff` for asyncio task steps and thread-pool work).  A thread
shows at most one root span at a time, so a sample never carries two ``span_id`` values,
and a root span that ends stops being shown wherever it was.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from time import perf_counter, thread_time
from types import FrameType
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import TraceFlags

from pyrospan_launch.agent.otel_compat import Shortcuts, shortcuts
from pyrospan_launch.agent.spans.labels import CURRENT, Labels, LabelSwitch, RootLabels
from pyrospan_launch.agent.spans.openings import OPENINGS
from pyrospan_launch.settings.label_limits import MAX_VALUE_BYTES, fit_value
from pyrospan_launch.wire.names import PROFILE_ID_ATTRIBUTE, SPAN_ID, SPAN_NAME, TRACE_ID

_SAMPLED = TraceFlags.SAMPLED
_current_get = CURRENT.get
# A root span this long (ns; two samples at the default 100 Hz) that never ran inside its
# marker frame is said (SpanProfileProcessor.unmarked).
_NOTABLE_NS = 20_000_000


def _set_new_attribute(span: Span, key: str, value: str) -> None:
    """``span.set_attribute`` for a span that only this thread knows yet, at a tenth of its cost.

    In ``on_start`` the span has not been returned to anyone, so the SDK's lock and
    checks guard nothing; the key is ours and the value a valid short string.  Anything
    unexpected (another SDK's span, limits that would drop it) takes the public path.
    This is every root span's single largest cost, hence the care (benchmarks/span_cost).
    """
    try:
        attributes: Any = span._attributes
        store = attributes._dict
        if (
            type(store) is dict
            and attributes._immutable is False
            and key not in store
            and (attributes.maxlen is None or len(store) < attributes.maxlen)
            and (attributes.max_value_len is None or attributes.max_value_len >= len(value))
        ):
            store[key] = value
            return
    except AttributeError:
        pass  # not the SDK's BoundedAttributes: the public way below
    span.set_attribute(key, value)


class SpanProfileProcessor(SpanProcessor):
    """Gives local root spans ``pyroscope.profile.id`` and tracks which root each span belongs to.

    ``context_switching`` says whether the running context's changes reach
    :class:`LabelSwitch` (pyrospan's runtime context is in use).  When they don't (the
    app chose another OTEL_PYTHON_CONTEXT), labels follow span start and end on the
    starting thread instead, as simpler span processors do.

    Both hooks run for every span of the app, so they are written for speed: spans are
    keyed by their span id (``on_end`` gets a read-only copy, not the span), and the id
    is formatted once.
    """

    def __init__(
        self,
        switch: LabelSwitch,
        *,
        span_name_label: bool = True,
        trace_id_label: bool = False,
        context_switching: bool = True,
        sdk_shortcuts: Shortcuts | None = None,
    ) -> None:
        self._switch = switch
        # Which private SDK fields the hooks below may read (otel_compat); public for
        # span_context, which follows the same choice.
        self.shortcuts = sdk_shortcuts or shortcuts()
        self._fields = self.shortcuts.span_fields
        self._fast_attributes = self.shortcuts.attributes
        self._span_name_label = span_name_label
        self._trace_id_label = trace_id_label
        self._context_switching = context_switching
        self._threads = switch.per_thread
        # Open span id (of a sampled local tree) -> the labels of its local root.  Public
        # for span_context, which reads it on every context change.
        self.roots: dict[int, RootLabels] = {}
        self._shown_before: dict[int, RootLabels | None] = {}
        # Called with the first root span that starts where no marker frame will run, so
        # only a thread tag can label it, which the Stack sampler does not read; None
        # when that does not matter (py-spy samples, or it was said).
        self.unframed: Callable[[str], object] | None = None
        # Called with the name and milliseconds of the first root span that ran for a
        # while and ended without ever running inside its marker frame (see on_end).
        self.unmarked: Callable[[str, float], object] | None = None
        # Called as the first root span on each thread starts, under the Stack sampler: it
        # samples only the threads it was told of (Profiler.see_current_thread).  True
        # when the thread needs no more checks, False to be asked again at the next one.
        self.foreign_thread: Callable[[], bool] | None = None

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        # The SDK's own fields where otel_compat found them right, not its accessors:
        # each accessor is a call, and every span of the app pays for them.
        fields = self._fields
        context: Any = span._context if fields else span.get_span_context()
        if not context.trace_flags & _SAMPLED:
            return  # an unsampled trace is never exported: a profile link would dangle
        parent = span._parent if fields else span.parent
        sid = context.span_id
        roots = self.roots
        if parent is not None and not parent.is_remote:
            root = roots.get(parent.span_id)
            if root is not None:
                roots[sid] = root
            return
        span_id = f"{sid:016x}"  # 16 hex digits, as Grafana queries it (one opcode, no calls)
        if self._fast_attributes:
            _set_new_attribute(span, PROFILE_ID_ATTRIBUTE, span_id)
        else:
            span.set_attribute(PROFILE_ID_ATTRIBUTE, span_id)
        name = ""
        if self._span_name_label:
            name = span._name if fields else span.name
            if type(name) is not str or len(name) > MAX_VALUE_BYTES or not name.isascii():
                # The one cut of every span_name label, thread tag and marker frame alike, so
                # a long name costs no upload window (docs/design.md, labels within
                # Pyroscope's limits).
                name = fit_value(str(name))
            labels: Labels = ((SPAN_NAME, name),)
        else:
            labels = ()
        trace_id = ""
        if self._trace_id_label:
            trace_id = f"{context.trace_id:032x}"
            labels += ((TRACE_ID, trace_id),)
        # span_id last: thread tags are set in this order and removed in the reverse one
        # (LabelSwitch), so a sample whose tags are read between two of those calls never
        # has a span_id without the span's other labels.
        labels += ((SPAN_ID, span_id),)
        parts = None
        if self._switch.frames:
            # What the span's own marker frame will carry, made on first use (span_markers).
            parts = (span_id, name, trace_id)
        node = RootLabels(labels, sid, parts)
        roots[sid] = node
        local = self._threads.labels
        if not local.sampled and self.foreign_thread is not None:
            local.sampled = bool(self.foreign_thread())
        switch = self._switch
        watch_opening = switch.openings or switch.unmarked_opening is not None
        if (watch_opening or self.unframed is not None) and local.framed is None:
            opening = local.opening
            if opening is not None and OPENINGS.bind(opening, node, perf_counter()):
                pass  # the rest of the step runs in a marker that now stands for this span
            elif in_running_loop():
                if watch_opening:
                    # Opened inside a task step that runs in no marker: what the rest of
                    # that step burns is measured as it ends (LabelSwitch.opening_step_ended).
                    node.opened_cpu = thread_time()
            elif self.unframed is not None and not below_framing_entry(switch.framing_entries.ids):
                self.unframed(span._name if fields else span.name)
        if not self._context_switching:
            self._shown_before[sid] = self._switch.shown()
            self._switch.show(node)

    def on_end(self, span: ReadableSpan) -> None:
        context = span._context if self._fields else span.context
        if context is None:
            return
        span_id = context.span_id
        node = self.roots.pop(span_id, None)
        if node is None or node.span_id != span_id:
            return  # not a local root: its root keeps running
        node.active = False
        switch = self._switch
        # Ended in the task step that opened it, in no marker: that step's function learns.
        learned = node.opened_cpu is not None and switch.opening_step_ended(node, say=False)
        if node.opening is not None:
            OPENINGS.retire(node.opening)
        elif (
            self.unmarked is not None
            and not learned
            and node.marker is None
            and node.async_marker is None
            and node.step_marker is None
        ):
            self._never_marked(span)
        if self._context_switching:
            if self._threads.labels.node is node:
                switch.show(_current_get())  # ended while still current on this thread
        else:
            before = self._shown_before.pop(span_id, None)
            if switch.shown() is node:
                switch.show(before)

    def _never_marked(self, span: ReadableSpan) -> None:
        """A root span ended that never ran inside its marker frame: long enough to matter?

        Its samples could carry only thread tags.  That is a root span opened in an asyncio
        task that never awaited afterwards: its task's later steps would have run in the
        marker, but there were none.  Spans shorter than one sampling interval are left
        alone: they rarely hold a sample.
        """
        start, end = span.start_time, span.end_time
        if self.unmarked is None or start is None or end is None:
            return
        if end - start >= _NOTABLE_NS:
            self.unmarked(span.name, (end - start) / 1e6)

    def shutdown(self) -> None:
        self.roots.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def in_running_loop() -> bool:
    """Whether an asyncio event loop runs on this thread (a task step, or a callback)."""
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and asyncio.events._get_running_loop() is not None


def below_framing_entry(entries: set[int]) -> bool:
    """Whether a root span starting here runs below a server call that frames its work.

    ``entries`` are the ids of those calls' codes (``LabelSwitch.framing_entries.ids``).
    The walk starts two frames up, past the span processor's own caller.  Off a running
    event loop (whose task steps are framed: spans/handoff), only these frame a root span;
    elsewhere (a plain thread, a script's main code) only a thread tag labels it.
    """
    if not entries:
        return False
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        if id(frame.f_code) in entries:
            return True
        frame = frame.f_back
    return False
