"""Keep span labels right where work moves between contexts and threads.

Three places run code of a root span without any OpenTelemetry context change that
:mod:`pyrospan_launch.agent.spans.span_context` could see:

* asyncio task steps: many tasks (requests) take turns on one event-loop thread, so each
  step must show its own task's root span, and nothing once it yields;
* work handed to a thread pool (``concurrent.futures.ThreadPoolExecutor``, and so
  ``loop.run_in_executor`` and ``asyncio.to_thread``): it runs for the root span that
  submitted it;
* anyio worker threads (``anyio.to_thread.run_sync``), where Starlette and FastAPI run
  synchronous ``def`` endpoints while the request's span lives on the event loop.

Each is patched when the app first imports the module (a post-import hook), so an app
that never uses asyncio pays nothing.
"""

from __future__ import annotations

import collections.abc
import functools
from collections.abc import Callable, Generator
from types import ModuleType

from pyrospan_launch.agent.spans.labels import CURRENT, LabelSwitch, RootLabels
from pyrospan_launch.agent.spans.span_markers import hidden, hide, marker_of, step_marker_of
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

    hidden(labelled)
    return labelled


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
    state = switch.thread_state
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


class LabelledCoroutine(collections.abc.Coroutine):  # type: ignore[type-arg]
    """A task's coroutine that shows the task's root span labels during each of its steps.

    The task's event loop runs every step inside the task's own context, so
    :data:`CURRENT` read here is the task's root span.  After the step the thread goes back
    to what it showed before (nothing, on an event loop between steps).

    What a step raises (the task's result, StopIteration, an exception thrown in) leaves
    without this object's or the marker's traceback entries, as it leaves a bare coroutine.
    """

    __slots__ = ("_coro", "_state", "_switch")

    def __init__(self, coro: collections.abc.Coroutine[Any, Any, Any], switch: LabelSwitch) -> None:
        self._coro = coro
        self._switch = switch
        # The switch's per-thread state, read directly: every step of every task pays this.
        self._state = switch.thread_state

    def send(self, value: Any) -> Any:
        state = self._state
        before = state.node
        node = _current_get()
        marker = None
        if node is not None and node.active:
            marker = node.step_marker
            if marker is None and node.marker_parts is not None:
                marker = step_marker_of(node)  # the span's first step in a marker
        try:
            if marker is not None:
                # The step runs inside the span's marker frame: no thread tag to set.
                framed, tagged = state.framed, state.tagged
                state.node = state.framed = node
                try:
                    return marker(self._coro.send, value)
                finally:
                    state.framed = framed
                    if state.node is not node or state.tagged is not tagged:
                        self._switch.restore(before)  # the step started or ended a root span
                    else:
                        state.node = before
            if node is not before:
                self._switch.show(node)
            try:
                return self._coro.send(value)
            finally:
                # The step may have started or left a span: the loop thread goes back to
                # what it showed between steps, so the next task starts from a clean slate.
                if state.node is not before:
                    self._switch.show(before)
        except BaseException as exc:
            exc.__traceback__ = hide(exc.__traceback__)
            value = None  # the frame keeps nothing the exception could reach
            raise

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        switch = self._switch
        node = _current_get()
        try:
            marker = step_marker_of(node) if node is not None and node.active else None
            if marker is not None:
                state = self._state
                before, framed, tagged = state.node, state.framed, state.tagged
                state.node = state.framed = node
                try:
                    if val is None and tb is None:
                        return marker(self._coro.throw, typ)
                    return marker(functools.partial(self._coro.throw, typ, val), tb)
                finally:
                    state.framed = framed
                    if state.node is not node or state.tagged is not tagged:
                        switch.restore(before)
                    else:
                        state.node = before
            before = switch.shown()
            switch.show(node)
            try:
                if val is None and tb is None:
                    return self._coro.throw(typ)
                return self._coro.throw(typ, val, tb)
            finally:
                switch.show(before)
        except BaseException as exc:
            exc.__traceback__ = hide(exc.__traceback__)
            # The coroutine's frame in the traceback keeps this one (its f_back), which
            # must not keep the exception thrown in: no reference cycle.
            typ = val = tb = None
            raise

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return self._coro.__await__()

    def __getattr__(self, name: str) -> Any:
        # cr_frame, cr_code, __qualname__...: debuggers and task printing see the real one.
        return getattr(self._coro, name)

    def __repr__(self) -> str:
        return repr(self._coro)


hidden(LabelledCoroutine.send)
hidden(LabelledCoroutine.throw)


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
            if asyncio.iscoroutine(coro) and not isinstance(coro, LabelledCoroutine):
                coro = LabelledCoroutine(coro, task_switch)
            super().__init__(coro, *args, **kwargs)

        def get_coro(self) -> Any:
            coro = super().get_coro()
            return coro._coro if isinstance(coro, LabelledCoroutine) else coro

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


def _patch_anyio(to_thread: ModuleType, switch: LabelSwitch) -> None:
    """anyio worker threads (Starlette/FastAPI ``def`` endpoints) keep the request's labels.

    anyio 4 hands the function to its backend's ``run_sync_in_worker_thread``, which is
    wrapped (below ``to_thread.run_sync``, so the warnings ``run_sync`` issues about its
    caller still name the caller).  anyio 3 has no backend classes: ``run_sync`` itself is.
    """
    if hasattr(to_thread, "get_async_backend"):
        return  # anyio 4: the backends' own hooks (_patch_anyio_backend) do it
    run_sync = to_thread.run_sync
    if getattr(run_sync, _PATCHED, False):
        return

    @functools.wraps(run_sync)
    async def labelled_run_sync(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            node = CURRENT.get()
            if node is not None:
                func = run_as(node, switch, func)
            return await run_sync(func, *args, **kwargs)
        except BaseException as exc:
            exc.__traceback__ = hide(exc.__traceback__)
            raise

    hidden(labelled_run_sync)
    setattr(labelled_run_sync, _PATCHED, True)
    setattr(to_thread, "run_sync", labelled_run_sync)  # noqa: B010
    log.debug("anyio: worker threads keep the request's root span labels")


_ANYIO_BACKENDS = {
    "anyio._backends._asyncio": "AsyncIOBackend",
    "anyio._backends._trio": "TrioBackend",
}


def _patch_anyio_backend(module: ModuleType, switch: LabelSwitch) -> None:
    """anyio 4's backend runs worker-thread functions with the caller's root span labels."""
    backend = getattr(module, _ANYIO_BACKENDS[module.__name__], None)
    if backend is None:
        return  # anyio 3: to_thread.run_sync is wrapped instead
    original = backend.__dict__["run_sync_in_worker_thread"].__func__
    if getattr(original, _PATCHED, False):
        return

    @functools.wraps(original)
    async def labelled_run_sync_in_worker_thread(
        cls: Any, func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        try:
            node = _current_get()
            if node is not None:
                func = run_as(node, switch, func)
            return await original(cls, func, *args, **kwargs)
        except BaseException as exc:
            exc.__traceback__ = hide(exc.__traceback__)
            raise

    hidden(labelled_run_sync_in_worker_thread)
    setattr(labelled_run_sync_in_worker_thread, _PATCHED, True)
    setattr(backend, "run_sync_in_worker_thread", classmethod(labelled_run_sync_in_worker_thread))  # noqa: B010
    log.debug(f"anyio ({module.__name__}): worker threads keep the request's root span labels")


def _patch_asgi(module: ModuleType, switch: LabelSwitch) -> None:
    """OpenTelemetry's ASGI middleware awaits the app inside the request's marker frame."""
    if switch.frames:
        from pyrospan_launch.agent.spans.asgi_frames import patch_asgi_middleware

        patch_asgi_middleware(module)


def _patch_fastapi(module: ModuleType, switch: LabelSwitch) -> None:
    """FastAPI awaits endpoints inside the request's marker frame, near the leaf too."""
    if switch.frames:
        from pyrospan_launch.agent.spans.asgi_frames import patch_fastapi_endpoints

        patch_fastapi_endpoints(module)


_HOOKS: dict[str, Callable[[ModuleType, LabelSwitch], None]] = {
    "asyncio": _patch_asyncio,
    "concurrent.futures.thread": _patch_thread_pool,
    "anyio.to_thread": _patch_anyio,
    "anyio._backends._asyncio": _patch_anyio_backend,
    "anyio._backends._trio": _patch_anyio_backend,
    "opentelemetry.instrumentation.asgi": _patch_asgi,
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
            log.warning(
                f"span labels for {module.__name__} unavailable: {type(exc).__name__}: {exc}"
            )

    return hook
