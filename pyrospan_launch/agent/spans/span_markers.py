"""Marker frames: a function of its own for each local root span, so the stack names the span.

pyroscope-io reads a thread's tags some time after it read the thread's stack, so a
task step shorter than that lag gets another step's labels.  A frame, though, is read
with the stack.  Each local root span therefore gets a function made for it, whose code
object carries the span's labels:

* ``co_qualname`` (py-spy's frame name from Python 3.11, ``co_name`` before) is
  ``pyrospan.span:<span id>`` or ``pyrospan.span:<span id>:<trace id>`` (hex);
* ``co_filename`` (the frame's file) is the span name, cut to fit a Pyroscope label
  value (:func:`~pyrospan_launch.settings.label_limits.fit_value`).

Every asyncio task step of the span (``coro.send``) and every thread-pool work item it
hands off runs inside that function; the relay (:mod:`pyrospan_launch.agent.relay`) turns the
frame into the ``span_id``/``span_name`` sample labels and takes it out of the stack.
Everything the relay needs is in the frame itself, so a push that arrives after the span
ended (or in a forked child) needs no table of past spans.  See ``docs/design.md``.

No marker, and no wrapper of ours that calls one, shows in a traceback the app sees: an
exception leaves each of them through :func:`hide` (the templates below do it for every
marker; a wrapper registers itself with :func:`hidden` and does the same).

This module imports nothing of OpenTelemetry: the relay parses marker names with it.
"""

from __future__ import annotations

import collections
import types
from collections.abc import Callable
from types import TracebackType

from pyrospan_launch.agent.spans.code_set import CodeSet
from pyrospan_launch.settings.label_limits import fit_value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    F = TypeVar("F", bound=Callable[..., Any])

PREFIX = "pyrospan.span:"

Marker = Callable[..., "Any"]


def hide(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` without the entries of marker frames and of our own wrappers' frames.

    Every entry from the head on is relinked past such frames (``tb_next`` is writable);
    the first entry that is not ours is returned.  A function of ours that catches an
    exception sets ``exc.__traceback__`` to the result and re-raises with a bare
    ``raise``, which adds no entry: the exception leaves it as if it had never passed
    through (Python 3.11+).  Python 3.10 re-raises the traceback it caught, whose head is
    the catching frame itself: that one entry stays, the rest are relinked past.
    """
    head = tb
    while head is not None and _is_own(head.tb_frame.f_code):
        head = head.tb_next
    entry = tb
    while entry is not None:
        after = entry.tb_next
        while after is not None and _is_own(after.tb_frame.f_code):
            after = after.tb_next
        if entry.tb_next is not after:
            entry.tb_next = after
        entry = after
    return head


# Our wrappers' codes (not the markers': their names say so), known by identity.
_OWN_CODES = CodeSet()


def _is_own(code: types.CodeType) -> bool:
    return code in _OWN_CODES or code.co_name.startswith(PREFIX)


def hidden(function: F) -> F:
    """Register ``function`` (returned as it is) as ours: :func:`hide` leaves its frames out.

    Only for functions that re-raise whatever passes through them, through :func:`hide`.
    """
    hidden_code(function.__code__)
    return function


def hidden_code(code: types.CodeType) -> None:
    """Register ``code`` as ours, for the functions made from it (see :func:`hidden`)."""
    _OWN_CODES.add(code)


def hidden_inner(maker: Callable[..., Any], name: str) -> None:
    """Register the code of the function ``name`` that ``maker`` defines and returns.

    Every function ``maker`` makes shares that one code object: registered once, at
    import, not on each call (some are made per request).
    """
    hidden_code(next(c for c in maker.__code__.co_consts if getattr(c, "co_name", "") == name))


# The templates of every marker: whatever passes through one leaves it without the
# marker's entry (see hide).  The frame also lets go of its arguments, which hold the
# exception when one is thrown into a coroutine: a frame object of the traceback keeps
# its caller's frame object (``f_back``), so a marker frame that held the exception would
# keep it in a reference cycle.  ``exc`` itself is deleted on the way out.
def _call_in_span(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    try:
        return function(*args, **kwargs)
    except BaseException as exc:
        exc.__traceback__ = hide(exc.__traceback__)
        function = args = kwargs = None  # type: ignore[assignment]
        raise


def _step_in_span(function: Callable[[Any], Any], value: Any, /) -> Any:
    # A task step: ``coro.send(value)`` or ``coro.throw(exc)``.  Two plain parameters, no
    # ``*args`` tuple: a tuple holding an exception thrown into a task would be one more
    # object referring to it for as long as the step runs (gc.get_referrers shows it).
    try:
        return function(value)
    except BaseException as exc:
        exc.__traceback__ = hide(exc.__traceback__)
        function = value = None  # type: ignore[assignment]
        raise


async def _await_in_span(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    try:
        return await function(*args, **kwargs)
    except BaseException as exc:
        exc.__traceback__ = hide(exc.__traceback__)
        function = args = kwargs = None  # type: ignore[assignment]
        raise


_CALL_CODE = _call_in_span.__code__
_AWAIT_CODE = _await_in_span.__code__
_STEP_CODE = _step_in_span.__code__
_GLOBALS: dict[str, Any] = {"__name__": __name__, "hide": hide}
_HAS_QUALNAME = hasattr(_CALL_CODE, "co_qualname")


def marker_name(span_id: str, trace_id: str = "") -> str:
    """The frame name that stands for a root span (``span_id``/``trace_id`` in hex)."""
    return f"{PREFIX}{span_id}:{trace_id}" if trace_id else f"{PREFIX}{span_id}"


def _function(template: types.CodeType, name: str, span_name: str) -> Marker:
    if _HAS_QUALNAME:
        code = template.replace(co_name=name, co_qualname=name, co_filename=span_name)  # type: ignore[call-arg, unused-ignore]
    else:  # Python 3.10: py-spy reads co_name
        code = template.replace(co_name=name, co_filename=span_name)
    KEPT.keep(code)
    return types.FunctionType(code, _GLOBALS, name)


class KeptCodes:
    """The code objects of the last markers made, kept alive while the Stack sampler runs.

    The Stack sampler caches what it reads of a frame by the address of its code object
    (echion's frame cache).  A marker's code dies with its span; a new marker's code,
    allocated at the same address, would then be read with the dead one's name, and its
    samples labelled with another span.  Keeping the last ``size`` codes alive moves any
    address reuse far past the cache's reach (measured: precision 0.52 on a busy uvicorn
    service without this, 1.0 with it).  A code object is about 400 bytes.
    """

    def __init__(self) -> None:
        self._kept: collections.deque[types.CodeType] | None = None

    def start(self, size: int) -> None:
        """Keep the last ``size`` marker codes from now on."""
        if self._kept is None or self._kept.maxlen != size:
            self._kept = collections.deque(self._kept or (), maxlen=size)

    def keep(self, code: types.CodeType) -> None:
        kept = self._kept
        if kept is not None:
            kept.append(code)


# One per process, as the sampler's cache is: markers are made wherever a span's work
# first runs (handoff, server frames), far from the profiler that starts the keeping.
KEPT = KeptCodes()


def make_marker(span_id: str, span_name: str = "", trace_id: str = "") -> Marker:
    """``marker(f, *args, **kwargs)`` calls ``f`` inside a frame named after the root span."""
    return _function(_CALL_CODE, marker_name(span_id, trace_id), fit_value(span_name))


def make_step_marker(span_id: str, span_name: str = "", trace_id: str = "") -> Marker:
    """``marker(f, value)`` calls ``f(value)`` inside a frame named after the root span."""
    return _function(_STEP_CODE, marker_name(span_id, trace_id), fit_value(span_name))


def make_async_marker(span_id: str, span_name: str = "", trace_id: str = "") -> Marker:
    """``await marker(f, *args)`` awaits ``f(*args)`` inside a coroutine frame of the root span.

    A coroutine frame is re-entered at every resume, so once in the await chain it is on
    the stack in every later step of the task, including the rest of the step it started in.
    """
    return _function(_AWAIT_CODE, marker_name(span_id, trace_id), fit_value(span_name))


def make_opening_marker(name: str) -> Marker:
    """A task-step marker named ``name`` for a root span not opened yet (spans/openings)."""
    return _function(_STEP_CODE, name, "")


def parse(name: str, filename: str) -> tuple[str, str, str] | None:
    """``(span_id, span_name, trace_id)`` for a marker frame's name and file, else None."""
    if not name.startswith(PREFIX):
        return None
    ids = name[len(PREFIX) :].split(":")
    span_id = ids[0]
    trace_id = ids[1] if len(ids) > 1 else ""
    if len(span_id) != 16 or (trace_id and len(trace_id) != 32):
        return None
    return span_id, filename, trace_id


def _made(node: Any, template: types.CodeType) -> Marker | None:
    """A new marker from ``template`` for a root span's labels (None in tags mode).

    ``marker_parts`` hold the span name cut to fit already (span_profiles), so this is
    the one place a marker is made per root span, with no call it can spare.
    """
    parts = node.marker_parts
    if parts is None:
        return None
    span_id, span_name, trace_id = parts
    return _function(template, marker_name(span_id, trace_id), span_name)


def marker_of(node: Any) -> Marker | None:
    """The marker of a root span's labels, made on first use (None in tags mode)."""
    marker: Marker | None = node.marker
    if marker is None:
        marker = node.marker = _made(node, _CALL_CODE)
    return marker


def async_marker_of(node: Any) -> Marker | None:
    """The async marker of a root span's labels, made on first use (None in tags mode)."""
    marker: Marker | None = node.async_marker
    if marker is None:
        marker = node.async_marker = _made(node, _AWAIT_CODE)
    return marker


def step_marker_of(node: Any) -> Marker | None:
    """The task-step marker of a root span's labels, made on first use (None in tags mode)."""
    marker: Marker | None = node.step_marker
    if marker is None:
        marker = node.step_marker = _made(node, _STEP_CODE)
    return marker
