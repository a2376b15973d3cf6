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
second marker near the leaf keeps most such samples labelled (docs/design.md).
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

from pyrospan_launch.agent.spans.labels import CURRENT
from pyrospan_launch.agent.spans.span_markers import async_marker_of
from pyrospan_launch.common import log

_PATCHED = "__pyrospan_patched__"
_current_get = CURRENT.get


def framed_app(app: Any) -> Any:
    """``app`` (an ASGI callable) awaited inside the marker of the root span running it."""

    async def app_in_root_span(scope: Any, receive: Any, send: Any) -> Any:
        node = _current_get()
        if node is not None and node.active:
            marker = async_marker_of(node)
            if marker is not None:
                return await marker(app, scope, receive, send)
        return await app(scope, receive, send)

    return app_in_root_span


def patch_asgi_middleware(module: ModuleType) -> None:
    """Make every ``OpenTelemetryMiddleware`` built from now on call its app through a marker."""
    middleware = module.OpenTelemetryMiddleware
    init = middleware.__init__
    if getattr(init, _PATCHED, False):
        return

    @functools.wraps(init)
    def init_with_framed_app(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.app = framed_app(self.app)

    setattr(init_with_framed_app, _PATCHED, True)
    middleware.__init__ = init_with_framed_app
    log.debug("asgi: requests run inside their root span's marker from their first step")


def patch_fastapi_endpoints(routing: ModuleType) -> None:
    """FastAPI awaits each ``async def`` endpoint inside its root span's marker too."""
    original = routing.run_endpoint_function
    if getattr(original, _PATCHED, False):
        return

    @functools.wraps(original)
    async def run_endpoint_in_root_span(**kwargs: Any) -> Any:
        node = _current_get()
        if node is not None and node.active:
            marker = async_marker_of(node)
            if marker is not None:
                return await marker(original, **kwargs)
        return await original(**kwargs)

    setattr(run_endpoint_in_root_span, _PATCHED, True)
    setattr(routing, "run_endpoint_function", run_endpoint_in_root_span)  # noqa: B010
    log.debug("fastapi: endpoints run inside their root span's marker")
