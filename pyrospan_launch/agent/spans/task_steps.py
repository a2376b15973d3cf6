"""Asyncio task steps that run with the labels of their task's root span.

Many tasks take turns on one event-loop thread, so each step must show its own task's
root span, and nothing once it yields.  :class:`LabelledCoroutine` wraps a task's
coroutine and runs each step inside the span's marker frame (or with its thread tags);
a step that begins outside any span runs in an opening marker when its coroutine
function has been seen opening root spans there (:mod:`~pyrospan_launch.agent.spans.openings`).
``handoff`` makes every task's coroutine one of these.
"""

from __future__ import annotations

import collections.abc
import functools
import sys
from collections.abc import Generator
from time import perf_counter

from pyrospan_launch.agent.spans.labels import CURRENT, LabelSwitch
from pyrospan_launch.agent.spans.openings import OPENINGS, Opening
from pyrospan_launch.agent.spans.span_markers import hidden, hide, step_marker_of
from pyrospan_launch.common import log

TYPE_CHECKING = False  # typing is not imported at start-up (docs/design.md)
if TYPE_CHECKING:
    from typing import Any

_current_get = CURRENT.get


class LabelledCoroutine(collections.abc.Coroutine):  # type: ignore[type-arg]
    """A task's coroutine that shows the task's root span labels during each of its steps.

    The task's event loop runs every step inside the task's own context, so
    :data:`CURRENT` read here is the task's root span.  After the step the thread goes back
    to what it showed before (nothing, on an event loop between steps).

    What a step raises (the task's result, StopIteration, an exception thrown in) leaves
    without this object's or the marker's traceback entries, as it leaves a bare coroutine.
    """

    __slots__ = ("_coro", "_opening", "_opening_ids", "_switch", "_threads")

    def __init__(self, coro: collections.abc.Coroutine[Any, Any, Any], switch: LabelSwitch) -> None:
        self._coro = coro
        self._switch = switch
        # The switch's per-thread labels, read directly: every step of every task pays this.
        # Read at each step, not kept: a loop may run on another thread next time.
        self._threads = switch.per_thread
        # The coroutine functions whose steps outside any span run in an opening marker
        # (the set itself, which only grows), and this task's current one.
        self._opening_ids = switch.opening_codes.ids
        self._opening: Opening | None = None

    def send(self, value: Any) -> Any:
        state = self._threads.labels
        before = state.node
        node = _current_get()
        marker = None
        chained = False
        if node is not None and node.active:
            if node.awaited_in is self:
                # The span's async marker is in this coroutine's await chain (an ASGI
                # request): every step runs inside it, so no marker of the step's own.  One
                # marker code per span is one miss in the Stack sampler's frame cache.
                chained = True
            else:
                marker = node.step_marker
                if marker is None and node.marker_parts is not None:
                    marker = step_marker_of(node)  # the span's first step in a marker
        try:
            if marker is not None or chained:
                # The step runs inside the span's marker frame: no thread tag to set.
                framed, tagged = state.framed, state.tagged
                state.node = state.framed = node
                try:
                    if chained:
                        return self._coro.send(value)
                    return marker(self._coro.send, value)  # type: ignore[misc]
                finally:
                    state.framed = framed
                    if state.node is not node or state.tagged is not tagged:
                        self._switch.restore(before)  # the step started or ended a root span
                    else:
                        state.node = before
            if node is not before:
                self._switch.show(node)
            # A step that begins outside any span runs in the task's opening marker once
            # its coroutine function has learned to (spans/openings): a root span opening
            # in it binds the marker.  Any other step clears the thread's opening, so a
            # step run inside another task's (an eager task's first step) cannot take it.
            opening = self._opening_outside(node) if self._opening_ids else None
            outer = state.opening
            if outer is not opening:
                state.opening = opening
            try:
                if opening is not None:
                    return opening.marker(self._coro.send, value)
                return self._coro.send(value)
            finally:
                if outer is not opening:
                    state.opening = outer
                # The step may have started or left a span: the loop thread goes back to
                # what it showed between steps, so the next task starts from a clean slate.
                opened = state.node
                if opened is not before:
                    if opened is not None and opened.opened_cpu is not None:
                        self._switch.opening_step_ended(opened)
                    self._switch.show(before)
        except StopIteration:
            # The coroutine returned: its task takes the value and drops the traceback,
            # which holds no frame of the app's (PEP 479 turns any other into an error).
            raise
        except BaseException as exc:
            exc.__traceback__ = hide(exc.__traceback__)
            value = None  # the frame keeps nothing the exception could reach
            raise

    def _opening_outside(self, node: Any) -> Opening | None:
        """The opening marker for a step that begins now, if it needs one, else None.

        It needs one when it begins outside any span and its coroutine function has
        learned to open root spans there.
        """
        if (node is None or not node.active) and id(
            getattr(self._coro, "cr_code", None)
        ) in self._opening_ids:
            return self._next_opening()
        return None

    def _next_opening(self) -> Opening | None:
        """This task's opening marker for the step that begins now (made if needed)."""
        opening = self._opening
        if opening is None or opening.spent:
            try:
                opening = self._opening = OPENINGS.new()
            except Exception as exc:  # never the app's task over a label: the step runs plain
                log.debug(f"span labels: no opening marker ({type(exc).__name__}: {exc})")
                return None
        opening.began = perf_counter()
        return opening

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        switch = self._switch
        node = _current_get()
        try:
            marker = step_marker_of(node) if node is not None and node.active else None
            if marker is not None:
                state = self._threads.labels
                before, framed, tagged = state.node, state.framed, state.tagged
                state.node = state.framed = node
                try:
                    if val is None and tb is None:
                        return marker(self._coro.throw, typ)
                    return marker(functools.partial(self._coro.throw, typ, val), tb)
                finally:
                    state.framed = framed
                    if state.node is not node or state.tagged is not tagged:
                        switch.restore(before)
                    else:
                        state.node = before
            # As in send: a step that an exception thrown in begins outside any span (a
            # future the task awaited failed) runs in the opening marker once its function
            # learned to open root spans there (a retry or recovery path).
            state = self._threads.labels
            before = state.node
            if node is not before:
                switch.show(node)
            opening = self._opening_outside(node) if self._opening_ids else None
            outer = state.opening
            if outer is not opening:
                state.opening = opening
            try:
                if opening is not None:
                    if val is None and tb is None:
                        return opening.marker(self._coro.throw, typ)
                    return opening.marker(functools.partial(self._coro.throw, typ, val), tb)
                if val is None and tb is None:
                    return self._coro.throw(typ)
                return self._coro.throw(typ, val, tb)
            finally:
                if outer is not opening:
                    state.opening = outer
                opened = state.node
                if opened is not before:
                    if opened is not None and opened.opened_cpu is not None:
                        switch.opening_step_ended(opened)
                    switch.show(before)
        except BaseException as exc:
            exc.__traceback__ = hide(exc.__traceback__)
            # The coroutine's frame in the traceback keeps this one (its f_back), which
            # must not keep the exception thrown in: no reference cycle.
            typ = val = tb = None
            raise

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return self._coro.__await__()

    def __getattr__(self, name: str) -> Any:
        # cr_frame, cr_code, __qualname__...: debuggers and task printing see the real one.
        return getattr(self._coro, name)

    def __repr__(self) -> str:
        return repr(self._coro)


hidden(LabelledCoroutine.send)
hidden(LabelledCoroutine.throw)


def stepping_coroutine() -> LabelledCoroutine | None:
    """The labelled coroutine of the asyncio task running now, None outside one."""
    asyncio = sys.modules.get("asyncio")  # not an import statement: every ASGI request asks
    if asyncio is None:
        return None
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running event loop
        return None
    if task is None:
        return None
    own = getattr(task, "labelled_coroutine", None)
    coro = own() if own is not None else task.get_coro()
    # type(), not isinstance(): an ABC's isinstance runs Python code, and it has no subclass.
    return coro if type(coro) is LabelledCoroutine else None
