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

This module imports nothing of OpenTelemetry: the relay parses marker names with it.
"""

from __future__ import annotations

import types
from collections.abc import Callable

from pyrospan_launch.settings.label_limits import fit_value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PREFIX = "pyrospan.span:"

Marker = Callable[..., "Any"]


def _call_in_span(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    return function(*args, **kwargs)


async def _await_in_span(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    return await function(*args, **kwargs)


_CALL_CODE = _call_in_span.__code__
_AWAIT_CODE = _await_in_span.__code__
_GLOBALS: dict[str, Any] = {"__name__": __name__}
_HAS_QUALNAME = hasattr(_CALL_CODE, "co_qualname")


def marker_name(span_id: str, trace_id: str = "") -> str:
    """The frame name that stands for a root span (``span_id``/``trace_id`` in hex)."""
    return f"{PREFIX}{span_id}:{trace_id}" if trace_id else f"{PREFIX}{span_id}"


def _function(template: types.CodeType, name: str, span_name: str) -> Marker:
    if _HAS_QUALNAME:
        code = template.replace(co_name=name, co_qualname=name, co_filename=span_name)  # type: ignore[call-arg, unused-ignore]
    else:  # Python 3.10: py-spy reads co_name
        code = template.replace(co_name=name, co_filename=span_name)
    return types.FunctionType(code, _GLOBALS, name)


def make_marker(span_id: str, span_name: str = "", trace_id: str = "") -> Marker:
    """``marker(f, *args, **kwargs)`` calls ``f`` inside a frame named after the root span."""
    return _function(_CALL_CODE, marker_name(span_id, trace_id), fit_value(span_name))


def make_async_marker(span_id: str, span_name: str = "", trace_id: str = "") -> Marker:
    """``await marker(f, *args)`` awaits ``f(*args)`` inside a coroutine frame of the root span.

    A coroutine frame is re-entered at every resume, so once in the await chain it is on
    the stack in every later step of the task, including the rest of the step it started in.
    """
    return _function(_AWAIT_CODE, marker_name(span_id, trace_id), fit_value(span_name))


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


def marker_of(node: Any) -> Marker | None:
    """The marker of a root span's labels, made on first use (None in tags mode)."""
    marker: Marker | None = node.marker
    if marker is None and node.marker_parts is not None:
        marker = make_marker(*node.marker_parts)
        node.marker = marker
    return marker


def async_marker_of(node: Any) -> Marker | None:
    """The async marker of a root span's labels, made on first use (None in tags mode)."""
    marker: Marker | None = node.async_marker
    if marker is None and node.marker_parts is not None:
        marker = make_async_marker(*node.marker_parts)
        node.async_marker = marker
    return marker
