"""Run a WSGI request's work inside its root span's marker frame, where the request reaches the app.

A WSGI request runs on one thread (or greenlet) from start to end, and its root span
starts in the middle of that call: in OpenTelemetry's WSGI middleware, in Flask's
``before_request``, in Django's middleware.  Without a frame around the work, its
samples would be labelled by thread tags only, which pyroscope-io reads late and which
cannot tell the greenlets of one thread apart (gevent, eventlet).  So the call that
hands the request to the code that does its work runs inside the marker of the root
span current there (:func:`handoff.call_as`):

* ``OpenTelemetryMiddleware`` (``opentelemetry.instrumentation.wsgi``, for apps wrapped
  in it): the wrapped app, and each step of the response it returns;
* Flask: ``Flask.dispatch_request``, the view, after ``before_request`` started the span;
* Django: ``BaseHandler._get_response``, the view and its own middleware, after
  OpenTelemetry's middleware started the span.

Outside a root span each is called as it is.  See docs/design.md, "Marker frames".
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any

from pyrospan_launch.agent.spans.handoff import call_as, in_current_root_span, run_as
from pyrospan_launch.agent.spans.labels import CURRENT, LabelSwitch
from pyrospan_launch.agent.spans.span_markers import hidden, hide
from pyrospan_launch.common import log

_PATCHED = "__pyrospan_patched__"
_current_get = CURRENT.get


class FramedResponse:
    """A WSGI response whose every step (``next``) runs inside the root span's marker."""

    __slots__ = ("_framed_next", "_iterable")

    def __init__(self, iterable: Iterable[bytes], framed_next: Callable[..., bytes]) -> None:
        self._iterable = iterable
        self._framed_next = framed_next

    def __iter__(self) -> Iterator[bytes]:
        iterator = iter(self._iterable)
        framed_next = self._framed_next
        while True:
            try:
                chunk = framed_next(iterator)
            except StopIteration:
                return
            yield chunk

    def close(self) -> None:
        close = getattr(self._iterable, "close", None)
        if close is not None:
            close()


def framed_wsgi_app(app: Callable[..., Any], switch: LabelSwitch) -> Callable[..., Any]:
    """``app`` (a WSGI callable) called, and its response iterated, in the root span's marker."""

    def app_in_root_span(environ: Any, start_response: Any) -> Any:
        try:
            node = _current_get()
            if node is None or not node.active:
                return app(environ, start_response)
            response = call_as(node, switch, app, environ, start_response)
        except BaseException as exc:
            exc.__traceback__ = hide(exc.__traceback__)
            raise
        if isinstance(response, (list, tuple)):
            return response  # nothing left to compute
        return FramedResponse(response, run_as(node, switch, next))

    hidden(app_in_root_span)
    return app_in_root_span


def patch_wsgi_middleware(module: ModuleType, switch: LabelSwitch) -> None:
    """Every ``OpenTelemetryMiddleware`` built from now on calls its app through a marker."""
    middleware = module.OpenTelemetryMiddleware
    init = middleware.__init__
    if getattr(init, _PATCHED, False):
        return

    @functools.wraps(init)
    def init_with_framed_app(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.wsgi = framed_wsgi_app(self.wsgi, switch)

    setattr(init_with_framed_app, _PATCHED, True)
    middleware.__init__ = init_with_framed_app
    _note_entry(switch, middleware.__call__)
    log.debug("wsgi: requests run inside their root span's marker")


def _framed_method(method: Callable[..., Any], switch: LabelSwitch) -> Callable[..., Any]:
    in_root_span = in_current_root_span(method, switch)
    setattr(in_root_span, _PATCHED, True)
    return in_root_span


def patch_flask(module: ModuleType, switch: LabelSwitch) -> None:
    """Flask runs each view inside the marker of the request's root span."""
    flask_class = module.Flask
    if getattr(flask_class.dispatch_request, _PATCHED, False):
        return
    flask_class.dispatch_request = _framed_method(flask_class.dispatch_request, switch)
    # before_request starts the span inside full_dispatch_request, which then dispatches.
    _note_entry(switch, getattr(flask_class, "full_dispatch_request", None))
    log.debug("flask: views run inside their request's root span marker")


def patch_django(module: ModuleType, switch: LabelSwitch) -> None:
    """Django runs each view (and the middleware after OpenTelemetry's) inside the marker."""
    handler = module.BaseHandler
    if getattr(handler._get_response, _PATCHED, False):
        return
    handler._get_response = _framed_method(handler._get_response, switch)
    # OpenTelemetry's middleware starts the span inside get_response's middleware chain.
    _note_entry(switch, getattr(handler, "get_response", None))
    log.debug("django: views run inside their request's root span marker")


def _note_entry(switch: LabelSwitch, function: Any) -> None:
    """A root span that starts below ``function`` gets its marker (LabelSwitch.framing_entries)."""
    if function is None:
        return
    code = getattr(inspect.unwrap(function), "__code__", None)
    if code is not None:
        switch.framing_entries.add(code)
