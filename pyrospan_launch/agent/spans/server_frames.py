"""Where servers hand work to the app: patched on first import, to run in the span's marker.

WSGI apps (OpenTelemetry's middleware, Flask, Django: :mod:`wsgi_frames`), Celery tasks
(:mod:`task_frames`) and greenlets (:mod:`greenlets`).  asyncio, thread pools and ASGI
are :mod:`handoff`'s.  Each patch waits for the app's first import of its module, so a
program that never uses it pays nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from pyrospan_launch.agent.spans.handoff import guarded
from pyrospan_launch.common import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrospan_launch.agent.import_hooks import ImportHooks
    from pyrospan_launch.agent.spans.labels import LabelSwitch

Patch = Callable[[ModuleType, "LabelSwitch"], None]

# The patching modules load with the module they patch, not at start-up (docs/design.md,
# start-up imports).


def _wsgi_middleware(module: ModuleType, switch: LabelSwitch) -> None:
    from pyrospan_launch.agent.spans.wsgi_frames import patch_wsgi_middleware

    patch_wsgi_middleware(module, switch)


def _flask(module: ModuleType, switch: LabelSwitch) -> None:
    from pyrospan_launch.agent.spans.wsgi_frames import patch_flask

    patch_flask(module, switch)


def _django(module: ModuleType, switch: LabelSwitch) -> None:
    from pyrospan_launch.agent.spans.wsgi_frames import patch_django

    patch_django(module, switch)


def _celery(module: ModuleType, switch: LabelSwitch) -> None:
    from pyrospan_launch.agent.spans.task_frames import patch_celery_tracer

    patch_celery_tracer(module, switch)


def _greenlet(module: ModuleType, switch: LabelSwitch) -> None:
    from pyrospan_launch.agent.spans.greenlets import patch_greenlet

    patch_greenlet(module, switch)


def _eventlet(module: ModuleType, switch: LabelSwitch) -> None:
    # agent/green.py: its event loop cannot wait for the span exporter in a signal handler.
    log.warning(
        "eventlet: on SIGTERM the spans still queued for export are lost (eventlet's event "
        "loop cannot wait for them in a signal handler); profiles are sent, and so is "
        "everything at a normal exit"
    )


# Patches that put work inside marker frames: only when root spans have them.
FRAMES: dict[str, Patch] = {
    "opentelemetry.instrumentation.wsgi": _wsgi_middleware,
    "flask.app": _flask,
    "django.core.handlers.base": _django,
    "celery.app.trace": _celery,
}
# Patches that keep labels right in either method.
ALWAYS: dict[str, Patch] = {"greenlet": _greenlet, "eventlet": _eventlet}


def install(switch: LabelSwitch, hooks: ImportHooks) -> None:
    """Patch each server entry point as soon as the app imports its module."""
    patches = {**FRAMES, **ALWAYS} if switch.frames else dict(ALWAYS)
    for module, patch in patches.items():
        hooks.when_imported(module, guarded(patch, switch))
