"""Keep span labels right where work moves between contexts and threads.

Three places run code of a root span without any OpenTelemetry context change that
:mod:`pyrospan_launch.agent.spans.span_context` could see:

* asyncio task steps: many tasks (requests) take turns on one event-loop thread, so each
  step must show its own task's root span, and nothing once it yields (every task's
  coroutine is wrapped in :class:`~pyrospan_launch.agent.spans.task_steps.LabelledCoroutine`);
* work handed to a thread pool (``concurrent.futures.ThreadPoolExecutor``, and so
  ``loop.run_in_executor`` and ``asyncio.to_thread``): it runs for the root span that
  submitted it;
* anyio worker threads (``anyio.to_thread.run_sync``), where Starlette and FastAPI run
  synchronous ``def`` endpoints while the request's span lives on the event loop.

Each is patched when the app first imports the module (a post-import hook), so an app
that never uses asyncio pays nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import CoroutineType, ModuleType

from pyrospan_launch.agent.spans.labels import CURRENT, LabelSwitch, RootLabels
from pyrospan_launch.agent.spans.span_markers import (
    hidden,
    hidden_inner,
    hide,
    marker_of,
)
from pyrospan_launch.agent.spans.task_steps import LabelledCoroutine, stepping_coroutine
from pyrospan_launch.common import log

TYPE_CHECKING = False  # typing is not imported at start-up (docs/design.md)
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from pyrospan_launch.agent.import_hooks import ImportHooks

    T = TypeVar("T")

_current_get = CURRENT.get

_PATCHED = "__pyrospan_patched__"


def run_as(node: RootLabels, switch: LabelSwitch, func: Callable[..., T]) -> Callable[..., T]:
    """``func`` wrapped to run with ``node``'s labels, on whatever thread calls it.

    With marker frames the work runs inside the span's marker (its labels are read with
    the stack); otherwise the thread's tags show the span while it runs.  What ``func``
    raises leaves without this wrapper's or the marker's traceback entries.
    """

    @functools.wraps(func)
    def labelled(*args: Any, **kwargs: Any) -> T:
        try:
            return call_as(node, switch, func, *args, **kwargs)
        except BaseException as exc:
            exc.__traceback__ = hide(exc.__traceback__)
            raise

    return labelled


def in_current_root_span(func: Callable[..., T], switch: LabelSwitch) -> Callable[..., T]:
    """``func`` wrapped to run inside the marker of the root span current at each call.

    For the calls where a server's request or a worker's task does its work (a Flask
    view, a WSGI app, a Celery task body): called straight through :func:`call_as`, with
    no wrapper made per call, and outside any root span as it is.  What ``func`` raises
    leaves with no entry of ours: the framework's handler and an error tracker see the
    traceback they would see without pyrospan-run.
    """

    @functools.wraps(func)
    def in_root_span(*args: Any, **kwargs: Any) -> T:
        try:
            node = _current_get()
            if node is None or not node.active:
                return func(*args, **kwargs)
            return call_as(node, switch, func, *args, **kwargs)
        except BaseException as exc:
            exc.__traceback__ = hide(exc.__traceback__)
            raise

    return in_root_span


hidden_inner(run_as, "labelled")
hidden_inner(in_current_root_span, "in_root_span")


@hidden
def call_as(
    node: RootLabels, switch: LabelSwitch, func: Callable[..., T], /, *args: Any, **kwargs: Any
) -> T:
    """``func(*args, **kwargs)`` run here with ``node``'s labels (see :func:`run_as`)."""
    token = CURRENT.set(node)
    marker = node.marker
    if marker is None and node.active:
        marker = marker_of(node)  # None in tags mode
    if marker is None or not node.active:
        before = switch.shown()
        switch.show(node)
        try:
            return func(*args, **kwargs)
        except BaseException as exc:
            exc.__traceback__ = hide(exc.__traceback__)
            raise
        finally:
            CURRENT.reset(token)
            switch.show(before)
    state = switch.per_thread.labels
    before_node, framed, tagged = state.node, state.framed, state.tagged
    state.node = state.framed = node
    try:
        return marker(func, *args, **kwargs)  # type: ignore[return-value]
    except BaseException as exc:
        exc.__traceback__ = hide(exc.__traceback__)
        raise
    finally:
        CURRENT.reset(token)
        state.framed = framed
        if state.node is node and state.tagged is tagged:
            state.node = before_node
        else:
            switch.restore(before_node)


def _patch_asyncio(asyncio: ModuleType, task_switch: LabelSwitch) -> None:
    """Make every task created from now on switch labels on each step.

    ``asyncio.Task`` is replaced by a subclass that wraps the coroutine; the event loops
    (asyncio's and uvloop's, which looks ``asyncio.Task`` up when it is imported) create
    tasks through it, and so does ``asyncio.eager_task_factory`` (Python 3.12+), made
    again for it.  ``get_coro()`` and ``_coro`` return the task's own coroutine.
    """
    base = asyncio.Task
    if getattr(base, _PATCHED, False):
        return

    class Task(base):  # type: ignore[misc, valid-type]
        __doc__ = base.__doc__

        def __init__(self, coro: Any, *args: Any, **kwargs: Any) -> None:
            # A native coroutine first: every task pays this check.
            if type(coro) is CoroutineType or (
                asyncio.iscoroutine(coro) and not isinstance(coro, LabelledCoroutine)
            ):
                coro = LabelledCoroutine(coro, task_switch)
            super().__init__(coro, *args, **kwargs)

        def get_coro(self) -> Any:
            coro = super().get_coro()
            return coro._coro if type(coro) is LabelledCoroutine else coro

        # The coroutine the task steps, its LabelledCoroutine when it was wrapped: the base
        # class's own get_coro (a C call for the C task), read for every ASGI request.
        labelled_coroutine = base.get_coro

    # The C task steps the coroutine it was given and reads ``_coro`` nowhere, so the
    # attribute can show the task's own coroutine (asyncio's repr and get_stack read it).
    # The pure-Python task steps ``self._coro``: it keeps the wrapper there.
    c_task = getattr(asyncio.tasks, "_CTask", None)
    if c_task is not None and base is c_task:
        Task._coro = property(Task.get_coro)

    setattr(Task, _PATCHED, True)
    Task.__module__ = base.__module__
    Task.__qualname__ = base.__qualname__
    # Both names: loops call tasks.Task, user code and uvloop use asyncio.Task.
    setattr(asyncio, "Task", Task)  # noqa: B010
    setattr(asyncio.tasks, "Task", Task)  # noqa: B010
    make_factory = getattr(asyncio.tasks, "create_eager_task_factory", None)
    if make_factory is not None:
        # asyncio made its eager factory with the original class when it loaded: its
        # tasks would be neither labelled nor instances of asyncio.Task.
        factory = make_factory(Task)
        for namespace in (asyncio, asyncio.tasks):
            if hasattr(namespace, "eager_task_factory"):
                setattr(namespace, "eager_task_factory", factory)  # noqa: B010
    log.debug("asyncio: tasks switch span labels on every step")


def _patch_thread_pool(thread_module: ModuleType, switch: LabelSwitch) -> None:
    """Work submitted from a root span runs with that root span's labels.

    The executor's work item is replaced by a subclass that notes the submitter's root
    span and runs the item inside it.  The submitted function is then called by the
    standard library's own ``_WorkItem.run``, as without us: what it raises is caught
    there with no frame of ours in its traceback, and a warning it issues with
    ``stacklevel=2`` names the same caller.
    """
    base = getattr(thread_module, "_WorkItem", None)
    if base is None or not callable(getattr(base, "run", None)):
        raise RuntimeError("concurrent.futures.thread has no _WorkItem.run to label")
    if getattr(base, _PATCHED, False):
        return

    class _WorkItem(base):  # type: ignore[misc, valid-type]
        __doc__ = base.__doc__

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pyrospan_node = _current_get()

        def run(self, *args: Any, **kwargs: Any) -> Any:
            node = self._pyrospan_node
            if node is None:
                return super().run(*args, **kwargs)
            return call_as(node, switch, super().run, *args, **kwargs)

    setattr(_WorkItem, _PATCHED, True)
    _WorkItem.__module__ = base.__module__
    _WorkItem.__qualname__ = base.__qualname__
    setattr(thread_module, "_WorkItem", _WorkItem)  # noqa: B010
    log.debug("concurrent.futures: thread-pool work keeps its root span's labels")


class _OneItem:
    """An anyio worker's queue as anyio's own loop reads it while it runs one item for us.

    ``get`` hands over the item already taken from the real queue, then ``None`` (anyio's
    stop command), so anyio's loop returns after that item; everything else (the event
    loop's ``put_nowait``, ``task_done``) is the real queue's.
    """

    __slots__ = ("item", "queue")

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.item: Any = None

    def get(self, *args: Any, **kwargs: Any) -> Any:
        item, self.item = self.item, None
        return item

    def __getattr__(self, name: str) -> Any:
        return getattr(self.queue, name)


def _root_labels_of(item: Any) -> RootLabels | None:
    """The root span an anyio work item was submitted from: its copied context's labels."""
    try:
        node: RootLabels | None = item[0].get(CURRENT)
    except (TypeError, IndexError, AttributeError):
        return None
    return node


def _patch_anyio_asyncio(module: ModuleType, switch: LabelSwitch) -> None:
    """anyio's asyncio worker threads run each function with its caller's root span labels.

    The worker thread is replaced by a subclass whose ``run`` takes each work item from
    the queue, finds the submitter's root span in the item's copied context, and runs
    anyio's own ``run`` for that one item inside the span's marker.  The function is then
    called by anyio's own frame, as without us: a ``warnings.warn(..., stacklevel=2)`` in
    it names anyio's worker, and what it raises is caught there (anyio 3 and 4).
    """
    base = getattr(module, "WorkerThread", None)
    if base is None or not callable(getattr(base, "run", None)):
        raise RuntimeError(f"{module.__name__} has no WorkerThread.run to label")
    if getattr(base, _PATCHED, False):
        return
    run_items = base.run

    class WorkerThread(base):  # type: ignore[misc, valid-type]
        __doc__ = base.__doc__

        def run(self) -> None:
            queue: Any = self.queue  # type: ignore[has-type]
            one = _OneItem(queue)
            self.queue = one
            while True:
                one.item = item = queue.get()
                node = _root_labels_of(item) if item is not None else None
                if node is None:
                    run_items(self)
                else:
                    call_as(node, switch, run_items, self)
                if item is None:
                    return  # anyio's stop command, handled by its own loop above

    setattr(WorkerThread, _PATCHED, True)
    WorkerThread.__module__ = base.__module__
    WorkerThread.__qualname__ = base.__qualname__
    setattr(module, "WorkerThread", WorkerThread)  # noqa: B010
    log.debug(f"anyio ({module.__name__}): worker threads keep the request's root span labels")


def _patch_anyio_trio(module: ModuleType, switch: LabelSwitch) -> None:
    """anyio's trio backend runs worker-thread functions with the caller's root span labels.

    anyio hands trio's ``to_thread.run_sync`` a function of its own that calls the app's
    function; the name it imported is replaced by one that runs anyio's function inside
    the caller's marker.  The app's function is then called by anyio's frame, as without
    us (anyio 3 and 4).
    """
    run_sync = getattr(module, "run_sync", None)
    if not callable(run_sync):
        raise RuntimeError(f"{module.__name__} has no trio run_sync to label")
    if getattr(run_sync, _PATCHED, False):
        return

    @functools.wraps(run_sync)
    async def labelled_to_thread(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            node = _current_get()
            if node is not None:
                func = run_as(node, switch, func)
            return await run_sync(func, *args, **kwargs)
        except BaseException as exc:
            exc.__traceback__ = hide(exc.__traceback__)
            raise

    hidden(labelled_to_thread)
    setattr(labelled_to_thread, _PATCHED, True)
    setattr(module, "run_sync", labelled_to_thread)  # noqa: B010
    log.debug(f"anyio ({module.__name__}): worker threads keep the request's root span labels")


def _patch_asgi(module: ModuleType, switch: LabelSwitch) -> None:
    """OpenTelemetry's ASGI middleware awaits the app inside the request's marker frame."""
    if switch.frames:
        from pyrospan_launch.agent.spans.asgi_frames import patch_asgi_middleware

        patch_asgi_middleware(module, stepping_coroutine)


def _patch_aiohttp_server(module: ModuleType, switch: LabelSwitch) -> None:
    """OpenTelemetry's aiohttp server middleware awaits handlers inside the request's marker."""
    if switch.frames:
        from pyrospan_launch.agent.spans.aiohttp_frames import patch_aiohttp_server

        patch_aiohttp_server(module, stepping_coroutine)


def _patch_fastapi(module: ModuleType, switch: LabelSwitch) -> None:
    """FastAPI awaits endpoints inside the request's marker frame, near the leaf too.

    Only where a sample can be cut short on its way up: with whole stacks the request's
    marker near the root is always read, and the leaf marker's two frames, re-entered at
    every resume of the request, would cost about 1% of a busy service's CPU for nothing.
    """
    if switch.frames:
        from pyrospan_launch.agent.spans.asgi_frames import patch_fastapi_endpoints

        def apply() -> None:
            # Put off, it runs when the sampler changes (Profiler._change), out of the
            # import hook's guard: a failure there must cost these labels only.
            try:
                patch_fastapi_endpoints(module)
            except Exception as exc:
                _labels_unavailable(module, exc)

        switch.when_stacks_can_tear(apply)


_HOOKS: dict[str, Callable[[ModuleType, LabelSwitch], None]] = {
    "asyncio": _patch_asyncio,
    "concurrent.futures.thread": _patch_thread_pool,
    "anyio._backends._asyncio": _patch_anyio_asyncio,
    "anyio._backends._trio": _patch_anyio_trio,
    "opentelemetry.instrumentation.asgi": _patch_asgi,
    "opentelemetry.instrumentation.aiohttp_server": _patch_aiohttp_server,
    "fastapi.routing": _patch_fastapi,
}


def install(switch: LabelSwitch, hooks: ImportHooks) -> None:
    """Patch asyncio, thread pools and anyio as soon as the app imports them."""
    for module, patch in _HOOKS.items():
        hooks.when_imported(module, guarded(patch, switch))


def guarded(
    patch: Callable[[ModuleType, LabelSwitch], None], switch: LabelSwitch
) -> Callable[[ModuleType], None]:
    """An import hook applying ``patch``; a failure costs that module's labels, in one line."""

    def hook(module: ModuleType) -> None:
        try:
            patch(module, switch)
        except Exception as exc:  # never break the app's import over a label
            _labels_unavailable(module, exc)

    return hook


def _labels_unavailable(module: ModuleType, exc: Exception) -> None:
    log.warning(f"span labels for {module.__name__} unavailable: {type(exc).__name__}: {exc}")
