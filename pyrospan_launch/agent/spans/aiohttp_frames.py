"""Await an aiohttp handler inside its request span's marker frame, from the request's first step.

OpenTelemetry's aiohttp server middleware opens the request span inside the task step
that runs the handler, then awaits the handler without yielding.  That step began with no
root span, so no marker frame runs around it (:mod:`~pyrospan_launch.agent.spans.handoff`
marks the steps that *begin* inside a root span): what the handler burns before its first
``await`` carried the span only once its coroutine function had learned to run in
opening markers (:mod:`~pyrospan_launch.agent.spans.openings`), and a function's first
requests lost it.

So the middleware the instrumentation builds is wrapped: it hands the real middleware a
handler that awaits the app's handler inside the span's async marker
(:func:`~pyrospan_launch.agent.spans.asgi_frames.framed_app`, as for ASGI apps).  The
marker is then on the stack for the rest of that step and in every later one, and the
task's later steps need no marker of their own: one marker code per request.

Both forms of the instrumentation are covered: ``create_aiohttp_middleware`` (which its
instrumentor calls for every instrumented application) and the module's ``middleware``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any

from pyrospan_launch.agent.spans.asgi_frames import framed_app
from pyrospan_launch.agent.spans.span_markers import hidden_inner, hide
from pyrospan_launch.common import log

_PATCHED = "__pyrospan_patched__"
# aiohttp calls a middleware as ``middleware(request, handler)`` only when it carries this
# mark (``aiohttp.web.middleware``); the wrapper carries the wrapped one's.
_VERSION = "__middleware_version__"


def _no_coroutine() -> Any:
    return None


def framed_middleware(
    middleware: Any, stepping_coroutine: Callable[[], Any] = _no_coroutine
) -> Any:
    """``middleware`` (OpenTelemetry's), given handlers that run inside the request's marker.

    Outside a root span (a path the instrumentation excludes) the handler is awaited as it
    is.  What the handler raises leaves with no entry of ours in its traceback.
    """

    async def middleware_in_root_span(request: Any, handler: Any) -> Any:
        try:
            return await middleware(request, framed_app(handler, stepping_coroutine))
        except BaseException as exc:
            exc.__traceback__ = hide(exc.__traceback__)
            raise

    version = getattr(middleware, _VERSION, None)
    if version is not None:
        setattr(middleware_in_root_span, _VERSION, version)
    middleware_in_root_span.__wrapped__ = middleware  # type: ignore[attr-defined]
    setattr(middleware_in_root_span, _PATCHED, True)
    return middleware_in_root_span


hidden_inner(framed_middleware, "middleware_in_root_span")


def patch_aiohttp_server(
    module: ModuleType, stepping_coroutine: Callable[[], Any] = _no_coroutine
) -> None:
    """Make the middleware of ``opentelemetry.instrumentation.aiohttp_server`` frame handlers.

    Runs as the module is imported, before its instrumentor builds an application class
    around the middleware.
    """
    if getattr(module, _PATCHED, False):
        return
    create = getattr(module, "create_aiohttp_middleware", None)
    middleware = getattr(module, "middleware", None)
    if not callable(create) and not callable(middleware):
        raise RuntimeError(f"{module.__name__} has no middleware to frame")
    if callable(create):

        @functools.wraps(create)
        def create_framed_middleware(*args: Any, **kwargs: Any) -> Any:
            return framed_middleware(create(*args, **kwargs), stepping_coroutine)

        module.create_aiohttp_middleware = create_framed_middleware  # type: ignore[attr-defined]
    if callable(middleware) and not getattr(middleware, _PATCHED, False):
        module.middleware = framed_middleware(middleware, stepping_coroutine)  # type: ignore[attr-defined]
    setattr(module, _PATCHED, True)
    log.debug("aiohttp: handlers run inside their request span's marker from their first step")
