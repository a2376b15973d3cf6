"""OpenTelemetry's runtime context, with the profiler's labels switched on every context change.

Every time OpenTelemetry makes a span current (``use_span``, ``start_as_current_span``,
every instrumentation) or stops doing so, it calls the runtime context's ``attach`` and
``detach``.  This runtime context is OpenTelemetry's own contextvars implementation
plus one step: it records the root span of the context now running (in
:data:`~pyrospan_launch.agent.spans.labels.CURRENT`) and shows that root span's labels on
the thread.

It is selected through OpenTelemetry's documented switch, ``OTEL_PYTHON_CONTEXT``, by
the name ``pyrospan_contextvars_context`` (an ``opentelemetry_context`` entry point of
this package).  Until span linking is bound it behaves exactly like the default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

# Only what OpenTelemetry's own default runtime context needs: this module is loaded
# while ``opentelemetry.context`` itself is still importing.
from opentelemetry.context.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

from pyrospan_launch.agent import agent as the_agent
from pyrospan_launch.agent.spans.labels import CURRENT, LabelSwitch, RootLabels

if TYPE_CHECKING:
    from pyrospan_launch.agent.spans.span_profiles import SpanProfileProcessor


def _show_nothing(node: RootLabels | None) -> None:
    """Stands in for LabelSwitch.show until linking is bound."""


_current_get = CURRENT.get
_current_set = CURRENT.set
_current_reset = CURRENT.reset


def _span_id_of(span: Any) -> int:
    """The span id of any span object: attach's path for spans without the SDK's field."""
    return int(span.get_span_context().span_id)


def _current_span_of(context: Context) -> Any:
    """The public way to a Context's current span, when the SDK's key is not usable."""
    from opentelemetry import trace

    return trace.get_current_span(context)


def bind_running(agent: the_agent.Agent) -> None:
    """Bind the runtime context OpenTelemetry runs, if it is this one, to ``agent``'s links."""
    import opentelemetry.context as otel_context

    running = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    if (
        isinstance(running, LabelSwitchingRuntimeContext)
        and agent.processor is not None
        and agent.labels is not None
    ):
        running.bind(agent.processor, agent.labels)


class LabelSwitchingRuntimeContext(ContextVarsRuntimeContext):
    """``contextvars_context`` that also keeps the profiler's thread labels current.

    ``attach`` returns OpenTelemetry's token, or a pair of it and the token of
    :data:`CURRENT` when the running root span changed; ``detach`` undoes either.
    OpenTelemetry creates it through the entry point, with no arguments: it binds itself
    to the process's agent when that links spans already, and :meth:`bind` does it later.
    """

    def __init__(self) -> None:
        super().__init__()
        # What attach and detach use, bound once: they run on every context change of the
        # app, so each saved attribute lookup or call counts (benchmarks/span_cost).
        self._span_key = ""  # "": the public way (otel_compat found no usable key)
        self._span_fields = False  # otel_compat found the SDK span's ``_context`` right
        self._roots: dict[int, RootLabels] | None = None
        self._show: Callable[[RootLabels | None], None] = _show_nothing
        self._threads: Any = None  # the switch's PerThread: ``.labels.node`` is shown
        agent = the_agent.current()
        if agent is not None and agent.processor is not None and agent.labels is not None:
            self.bind(agent.processor, agent.labels)

    def bind(self, processor: SpanProfileProcessor, switch: LabelSwitch) -> None:
        """Switch ``switch``'s labels on context changes, by ``processor``'s root map."""
        # The key under which OpenTelemetry keeps the current span in a Context, when
        # otel_compat found it: reading it is what get_current_span(context) does, without
        # its calls.
        self._span_key = processor.shortcuts.span_key or ""
        self._span_fields = processor.shortcuts.span_fields
        self._show = switch.show
        self._threads = switch.per_thread
        self._roots = processor.roots

    def attach(self, context: Context) -> Any:
        token = self._current_context.set(context)
        roots = self._roots
        if roots is None:
            return token
        span_key = self._span_key
        span: Any = context.get(span_key) if span_key else _current_span_of(context)
        if span is None:
            root = None
        elif not self._span_fields:
            root = roots.get(_span_id_of(span))
        else:
            try:
                # The SDK's span (and the API's NonRecordingSpan) keep their SpanContext
                # here; get_span_context() costs a method call and a typing.cast more.
                root = roots.get(span._context.span_id)
            except AttributeError:
                root = roots.get(_span_id_of(span))
        # A root from ``roots`` is open, so showable as is.
        if self._threads.labels.node is not root:
            self._show(root)
        if root is _current_get():
            return token
        return (token, _current_set(root))

    def detach(self, token: Any) -> None:
        if type(token) is tuple:
            self._current_context.reset(token[0])
            _current_reset(token[1])
        else:
            self._current_context.reset(token)
        if self._roots is not None:
            node = _current_get()
            # show() also hides a root span that ended (on whichever thread) meanwhile.
            if self._threads.labels.node is not node or (node is not None and not node.active):
                self._show(node)
