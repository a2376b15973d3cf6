"""Put a root span's marker frame into the await chain of an ASGI request, from its first step.

OpenTelemetry's ASGI middleware (which the FastAPI and Starlette instrumentations use)
starts the request's span inside a step of the connection's task and then awaits the
app without yielding.  That step began with no root span, so it runs without a marker
frame around it (:mod:`pyrospan_launch.agent.spans.handoff` adds one to the steps that begin inside
a root span): the endpoint's first chunk, often all of a short request, would be
labelled by thread tags only, read up to a millisecond late.

So the app the middleware calls is wrapped: it awaits the real app inside the span's
async marker (:func:`span_markers.async_marker_of`).  A coroutine frame is re-entered at
every resume, so the marker is on the stack for the rest of that first step and in every
later one, whatever the endpoint awaits.

FastAPI's endpoint call (``fastapi.routing.run_endpoint_function``) gets the same marker
once more, a few frames above the endpoint's own code.  The profiler reads a stack from
the leaf up without stopping the thread; when a step ends during that walk, the outer
frames are lost (a torn stack), and with them a marker that sits only near the root.  A
second marker near the leaf keeps most such samples labelled (docs/design.md).  Where the
sampler reads whole stacks (the Stack sampler's CPU timers) it is put in only if the
process moves to a sampler that can tear them (handoff).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from pyrospan_launch.agent.spans.labels import CURRENT
from pyrospan_launch.agent.spans.span_markers import async_marker_of, hidden, hidden_inner, hide
from pyrospan_launch.common import log

_PATCHED = "__pyrospan_patched__"
_current_get = CURRENT.get


def _no_coroutine() -> Any:
    return None


def framed_app(app: Any, stepping_coroutine: Callable[[], Any] = _no_coroutine) -> Any:
    """``app`` (an ASGI app, or an aiohttp handler) awaited inside its root span's marker.

    ``stepping_coroutine`` returns the labelled coroutine of the running task
    (task_steps.stepping_coroutine): that task's later steps then need no marker of their own.
    """

    async def app_in_root_span(*args: Any, **kwargs: Any) -> Any:
        node = _current_get()
        chained = False
        try:
            if node is not None and node.active:
                marker = async_marker_of(node)
                if marker is not None:
                    # The task's later steps run inside this marker: they need none of their
                    # own (handoff), so the span has one marker code, not two.
                    chain = stepping_coroutine()
                    if chain is not None and node.awaited_in is None:
                        node.awaited_in = chain
                        chained = True
                    # The rest of the step that opened the span runs inside the marker.
                    node.opened_cpu = None
                    return await marker(app, *args, **kwargs)
            return await app(*args, **kwargs)
        except BaseException as exc:
            exc.__traceback__ = hide(exc.__traceback__)
            raise
        finally:
            if chained and node is not None:
                node.awaited_in = None  # steps after the app returned get their own marker

    app_in_root_span.__wrapped__ = app  # type: ignore[attr-defined]
    return app_in_root_span


hidden_inner(framed_app, "app_in_root_span")  # aiohttp makes one per request (aiohttp_frames)


_FRAMED = "_pyrospan_framed_app"


def patch_asgi_middleware(
    module: ModuleType, stepping_coroutine: Callable[[], Any] = _no_coroutine
) -> None:
    """Make every ``OpenTelemetryMiddleware`` call its app through a marker.

    ``app`` becomes a property of the class: the middleware's own ``__call__`` reads the
    app wrapped by :func:`framed_app`, anyone else (the app walking its middleware, a
    test) the app it was given, as without us.  The instance keeps both in its dict.
    """
    middleware = module.OpenTelemetryMiddleware
    if getattr(middleware, _PATCHED, False):
        return
    if "app" in middleware.__dict__:
        raise RuntimeError("OpenTelemetryMiddleware already has a class attribute 'app'")
    call_code = middleware.__call__.__code__
    get_frame = sys._getframe

    def get_app(self: Any) -> Any:
        mine = self.__dict__
        if get_frame(1).f_code is call_code:
            framed = mine.get(_FRAMED)
            if framed is not None:
                return framed
        try:
            return mine["app"]
        except KeyError:
            raise AttributeError("app") from None

    def set_app(self: Any, app: Any) -> None:
        mine = self.__dict__
        mine["app"] = app
        mine[_FRAMED] = framed_app(app, stepping_coroutine)

    def del_app(self: Any) -> None:
        mine = self.__dict__
        mine.pop(_FRAMED, None)
        del mine["app"]

    middleware.app = property(get_app, set_app, del_app)
    setattr(middleware, _PATCHED, True)
    log.debug("asgi: requests run inside their root span's marker from their first step")


def patch_fastapi_endpoints(routing: ModuleType) -> None:
    """FastAPI awaits each ``async def`` endpoint inside its root span's marker too."""
    original = routing.run_endpoint_function
    if getattr(original, _PATCHED, False):
        return

    @functools.wraps(original)
    async def run_endpoint_in_root_span(**kwargs: Any) -> Any:
        try:
            node = _current_get()
            if node is not None and node.active:
                marker = async_marker_of(node)
                if marker is not None:
                    return await marker(original, **kwargs)
            return await original(**kwargs)
        except BaseException as exc:
            exc.__traceback__ = hide(exc.__traceback__)
            raise

    hidden(run_endpoint_in_root_span)
    setattr(run_endpoint_in_root_span, _PATCHED, True)
    setattr(routing, "run_endpoint_function", run_endpoint_in_root_span)  # noqa: B010
    log.debug("fastapi: endpoints run inside their root span's marker")
