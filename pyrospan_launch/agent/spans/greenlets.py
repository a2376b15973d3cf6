"""Keep a thread's span labels with the greenlet that runs, at every greenlet switch.

gevent and eventlet run many requests on one thread, each in a greenlet, and switch
between them without any context change OpenTelemetry makes.  Each greenlet has its own
``contextvars`` context (greenlet 1.0+), so the root span of its context is known; but
the thread's labels (:class:`LabelSwitch`'s per-thread state, and the thread tags set
from it) would stay those of the greenlet that last changed them.

A greenlet trace function (``greenlet.settrace``) runs at every switch: it keeps the
state of the greenlet switched away from and shows the one switched to: the root span
its context runs, and whether that span's marker frame is on its stack.  The work of a
request itself runs inside its root span's marker (wsgi_frames, task_frames), read with
the stack whichever greenlet runs; this keeps thread tags from labelling one greenlet's
samples with another's span.
"""

from __future__ import annotations

import contextlib
import weakref
from types import ModuleType
from typing import Any

from pyrospan_launch.agent.spans.labels import CURRENT, LabelSwitch, RootLabels
from pyrospan_launch.common import log

_PATCHED = "__pyrospan_greenlet_trace__"

# What a greenlet showed when it was switched away from: (root span, framed root span).
Saved = tuple["RootLabels | None", "RootLabels | None"]


class GreenletLabels:
    """The greenlet trace function of one thread, switching ``switch``'s labels."""

    def __init__(self, switch: LabelSwitch, previous: Any = None) -> None:
        self._switch = switch
        self._threads = switch.per_thread
        self._previous = previous
        self._saved: weakref.WeakKeyDictionary[Any, Saved] = weakref.WeakKeyDictionary()

    def __call__(self, event: str, args: Any) -> None:
        if event in ("switch", "throw"):
            origin, target = args
            state = self._threads.labels
            # A greenlet that cannot be weakly referenced starts afresh when back.
            with contextlib.suppress(TypeError):
                self._saved[origin] = (state.node, state.framed)
            saved = self._saved.pop(target, None)
            if saved is None:
                context = target.gr_context
                node = None if context is None else context.get(CURRENT)
                framed = None
            else:
                node, framed = saved
            state.framed = framed
            if node is not state.node or state.tagged is not (None if node is framed else node):
                self._switch.restore(node)
        if self._previous is not None:
            self._previous(event, args)


def patch_greenlet(module: ModuleType, switch: LabelSwitch) -> None:
    """Switch labels with the greenlet on the thread that imported greenlet (gevent's hub)."""
    settrace = getattr(module, "settrace", None)
    gettrace = getattr(module, "gettrace", None)
    if settrace is None or gettrace is None:
        log.info("greenlet has no settrace: greenlets are labelled by marker frames only")
        return
    previous = gettrace()
    if getattr(previous, _PATCHED, False):
        return
    tracer = GreenletLabels(switch, previous)
    setattr(tracer, _PATCHED, True)
    settrace(tracer)
    log.debug("greenlet: span labels follow the greenlet that runs")
