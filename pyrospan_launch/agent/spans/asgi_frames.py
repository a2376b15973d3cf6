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
"""

from __future__ import annotations

import functools
from types import ModuleType

from pyrospan_launch.agent.spans.labels import CURRENT
from pyrospan_launch.agent.spans.span_markers import async_marker_of
from pyrospan_launch.common import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_PATCHED = "__pyrospan_patched__"
_current_get = CURRENT.get


def framed_app(app: Any) -> Any:
    """``app`` (an ASGI callable) awaited inside the marker of the root span running it."""

    async def app_in_root_span(scope: Any, receive: Any, send: Any) -> Any:
        node = _current_get()
        if node is not None and node.marker is not None and node.active:
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
