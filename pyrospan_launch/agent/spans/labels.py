"""The profiler's labels of each thread, switched to the root span of the context running on it.

pyroscope-io labels samples per OS thread (``add_thread_tag`` / ``remove_thread_tag`` act
on the calling thread).  :class:`LabelSwitch` keeps, for each thread, which root span's
labels it shows, and changes them with as few calls as possible.  This module imports
no OpenTelemetry code, so the profiler can start before the SDK.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar

Labels = tuple[tuple[str, str], ...]
TagFunction = Callable[[str, str], object]


class RootLabels:
    """The profiler labels of one local root span, shared by its whole span tree."""

    __slots__ = ("active", "labels", "span_id")

    def __init__(self, labels: Labels, span_id: int = 0) -> None:
        self.labels = labels
        self.span_id = span_id  # the root span's own id, to tell it from its children
        self.active = True


# The root span labels of the running context.  Being a ContextVar, it travels with
# asyncio tasks and copied contexts exactly as OpenTelemetry's own context does; it is
# updated together with it (span_context) so the two always agree.
CURRENT: ContextVar[RootLabels | None] = ContextVar("pyrospan_root_labels", default=None)


class _ThreadState(threading.local):
    """Per-thread: the root span whose labels the thread shows."""

    # A class default: a thread that never switched reads None without the cost of a
    # missing attribute (an exception inside threading.local), on every context change.
    node: RootLabels | None = None


class LabelSwitch:
    """Sets the profiler's labels of the calling thread; at most one root span at a time."""

    def __init__(self, add_tag: TagFunction, remove_tag: TagFunction) -> None:
        self._add_tag = add_tag
        self._remove_tag = remove_tag
        self._local = _ThreadState()

    @property
    def thread_state(self) -> _ThreadState:
        """The per-thread state object (``.node``): the shown root span of the calling thread."""
        return self._local

    def shown(self) -> RootLabels | None:
        """The root span this thread's samples are labelled with now."""
        node: RootLabels | None = self._local.node
        return node

    def show(self, node: RootLabels | None) -> None:
        """Label this thread's samples with ``node`` (nothing for None or an ended span)."""
        local = self._local
        current: RootLabels | None = local.node
        if node is not None and not node.active:
            node = None
        if current is node:
            return
        if current is not None:
            for key, value in current.labels:
                self._remove_tag(key, value)
        if node is not None:
            for key, value in node.labels:
                self._add_tag(key, value)
        local.node = node

    def show_current(self) -> None:
        """Label this thread with the root span of the context running now."""
        self.show(CURRENT.get())

    def reapply(self) -> None:
        """Set this thread's labels again, after the profiler itself was restarted."""
        node = self.shown()
        self._local.node = None
        self.show(node)
