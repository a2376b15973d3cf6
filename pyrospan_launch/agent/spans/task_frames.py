"""Run a Celery task's body inside the marker frame of its root span.

OpenTelemetry's Celery instrumentation starts a task's span in the ``task_prerun``
signal and makes it current; Celery then calls the task's ``run`` (directly, or through
a custom ``Task.__call__``).  That call is where the task's work begins, and it runs
inside the marker of the root span current there (:func:`handoff.call_as`), in every pool:
prefork processes, threads, and greenlets (gevent, eventlet), whose samples thread tags
could not tell apart.

Celery builds one tracer per task (``celery.app.trace.build_tracer``), reading
``task.run`` then; the task's ``run`` is framed just before.  Outside a root span it is
called as it is.
"""

from __future__ import annotations

import contextlib
import functools
from types import CodeType, ModuleType
from typing import Any

from pyrospan_launch.agent.spans.handoff import in_current_root_span
from pyrospan_launch.agent.spans.labels import LabelSwitch
from pyrospan_launch.common import log

_PATCHED = "__pyrospan_patched__"


def _framed_run(run: Any, switch: LabelSwitch) -> Any:
    run_in_root_span = in_current_root_span(run, switch)
    setattr(run_in_root_span, _PATCHED, True)
    return run_in_root_span


def patch_celery_tracer(module: ModuleType, switch: LabelSwitch) -> None:
    """Every task tracer Celery builds from now on calls the task's body through a marker."""
    build_tracer = module.build_tracer
    if getattr(build_tracer, _PATCHED, False):
        return

    @functools.wraps(build_tracer)
    def build_framed_tracer(name: Any, task: Any, *args: Any, **kwargs: Any) -> Any:
        run = getattr(task, "run", None)
        if run is not None and not getattr(run, _PATCHED, False):
            # A task whose run cannot be set is labelled by thread tags.
            with contextlib.suppress(AttributeError, TypeError):
                task.run = _framed_run(run, switch)
        return build_tracer(name, task, *args, **kwargs)

    # The task_prerun signal starts the span inside the tracer's trace_task, which then
    # calls the body: a root span started below it gets its marker.
    for const in getattr(build_tracer, "__code__", build_tracer).co_consts:
        if isinstance(const, CodeType) and const.co_name == "trace_task":
            switch.framing_entries.add(const)
    setattr(build_framed_tracer, _PATCHED, True)
    module.build_tracer = build_framed_tracer  # type: ignore[attr-defined]
    log.debug("celery: task bodies run inside their root span's marker")
