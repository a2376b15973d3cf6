"""Marker frames and our wrappers leave no entry in the tracebacks the app sees.

Each case raises the same way once plainly and once through our code (a marker, a task
step, a pool item, the ASGI wrapper) and compares ``traceback.extract_tb``: equal on
Python 3.11+, where a bare ``raise`` re-raises the traceback we relinked; on 3.10 a bare
``raise`` re-raises the traceback as it was caught, so the entry of the frame of ours that
caught stays: a wrapper's, or a marker's when no wrapper of ours is around it (one entry,
where the marker was), and no other.
"""

from __future__ import annotations

import asyncio
import concurrent.futures.thread
import gc
import importlib
import sys
import threading
import traceback
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from tag_recorder import TagRecorder

from pyrospan_launch.agent.spans import handoff, task_steps
from pyrospan_launch.agent.spans.aiohttp_frames import framed_middleware
from pyrospan_launch.agent.spans.asgi_frames import framed_app
from pyrospan_launch.agent.spans.labels import CURRENT, LabelSwitch, RootLabels
from pyrospan_launch.agent.spans.span_markers import (
    PREFIX,
    hide,
    make_async_marker,
    make_marker,
    make_step_marker,
)

SPAN_ID = "00000000000000aa"
OURS_STAY = sys.version_info < (3, 11)  # see the module docstring


def root() -> RootLabels:
    return RootLabels(
        (("span_id", SPAN_ID), ("span_name", "GET /boom")),
        span_id=0xAA,
        marker_parts=(SPAN_ID, "GET /boom", ""),
    )


def names(exc: BaseException) -> list[str]:
    return [f"{frame.name}@{frame.filename}" for frame in traceback.extract_tb(exc.__traceback__)]


def caught(call: Callable[[], Any]) -> BaseException:
    try:
        call()
    except BaseException as exc:
        return exc
    raise AssertionError("nothing raised")


def failing(*args: Any, **kwargs: Any) -> None:
    raise ValueError("boom")


def no_marker(entries: list[str]) -> list[str]:
    assert not [e for e in entries if PREFIX in e or "GET /boom" in e], entries
    return entries


def without_the_catching_marker(entries: list[str]) -> list[str]:
    """3.11+: no marker entry.  3.10: at most one, the marker that caught: dropped here."""
    if not OURS_STAY:
        return no_marker(entries)
    markers = [e for e in entries if PREFIX in e or "GET /boom" in e]
    assert len(markers) <= 1, entries
    return [e for e in entries if e not in markers]


def without_ours(entries: list[str]) -> list[str]:
    """On 3.10 the wrapper that caught keeps its own entry: drop it for the comparison."""
    if not OURS_STAY:
        return entries
    return [e for e in entries if "pyrospan_launch" not in e]


def test_a_marker_leaves_no_entry() -> None:
    marker = make_marker(SPAN_ID, "GET /boom")
    plain = caught(lambda: failing(1, two=2))
    marked = caught(lambda: marker(failing, 1, two=2))
    assert without_the_catching_marker(names(marked)) == names(plain)


def test_hide_relinks_past_marker_entries_anywhere_in_the_chain() -> None:
    marker = make_marker(SPAN_ID, "GET /boom")

    def outer() -> None:
        marker(marker, failing)  # two markers deep

    exc = caught(outer)
    entries = without_the_catching_marker(names(exc))
    assert [e.split("@")[0] for e in entries][-2:] == ["outer", "failing"]
    assert hide(None) is None


@pytest.mark.parametrize("where", ["span", "opening"])
def test_task_steps_and_thrown_exceptions_leave_no_entry_and_no_referrer(where: str) -> None:
    # In the span's step marker, or outside any span in an opening marker (the tasks'
    # coroutine functions learned to open root spans in their steps).
    switch = LabelSwitch(TagRecorder().add, TagRecorder().remove, frames=True)
    node = root() if where == "span" else None
    seen: dict[str, Any] = {}

    async def fails() -> None:
        await asyncio.sleep(0)
        raise LookupError("task failed")

    async def main(wrap: bool) -> list[str]:
        def task_of(coro: Any) -> asyncio.Future[Any]:
            return asyncio.ensure_future(
                task_steps.LabelledCoroutine(coro, switch) if wrap else coro
            )

        token = CURRENT.set(node)
        try:
            failed = task_of(fails())
            future = asyncio.get_running_loop().create_future()

            async def waits() -> None:
                await future

            if where == "opening":
                switch.opening_codes.add(fails.__code__)
                switch.opening_codes.add(waits.__code__)
            woken = task_of(waits())
        finally:
            CURRENT.reset(token)
        try:
            await failed
        except LookupError as exc:
            out = names(exc)
        await asyncio.sleep(0)
        future.set_exception(ConnectionError("refused"))
        try:
            await woken
        except ConnectionError as exc:
            thrown = exc
        woken = future = None  # type: ignore[assignment]
        gc.collect()
        seen[f"referrers {wrap}"] = [type(r).__name__ for r in gc.get_referrers(thrown)]
        seen[f"thrown {wrap}"] = names(thrown)
        return out

    plain = asyncio.run(main(False))
    wrapped = asyncio.run(main(True))
    assert without_ours(no_marker(wrapped)) == plain
    assert without_ours(no_marker(seen["thrown True"])) == seen["thrown False"]
    assert seen["referrers True"] == seen["referrers False"]  # no tuple holding the exception


def test_a_step_marker_holds_no_tuple_of_its_argument() -> None:
    step = make_step_marker(SPAN_ID, "GET /boom")
    value = object()
    assert step(lambda v: [r for r in gc.get_referrers(v) if isinstance(r, tuple)], value) == []


def test_pool_items_are_called_by_the_standard_librarys_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tracebacks and ``stacklevel=2`` warnings of a work item are the same as without us."""
    thread_module = concurrent.futures.thread

    def deprecated() -> None:
        warnings.warn("old", DeprecationWarning, stacklevel=2)

    def observe() -> tuple[list[str], list[str]]:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            exc = caught(lambda: pool.submit(failing).result())
            with warnings.catch_warnings(record=True) as warned:
                warnings.simplefilter("always")
                pool.submit(deprecated).result()
        return names(exc), [f"{w.filename}:{w.lineno}" for w in warned]

    plain = observe()
    monkeypatch.setattr(thread_module, "_WorkItem", thread_module._WorkItem)
    handoff._patch_thread_pool(thread_module, LabelSwitch(TagRecorder().add, TagRecorder().remove))
    token = CURRENT.set(root())
    try:
        assert observe() == plain
    finally:
        CURRENT.reset(token)


def test_the_asgi_wrapper_and_its_async_marker_leave_no_entry() -> None:
    node = root()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("endpoint failed")

    async def call(asgi: Any) -> BaseException:
        token = CURRENT.set(node)
        try:
            await asgi({}, None, None)
        except ValueError as exc:
            return exc
        finally:
            CURRENT.reset(token)
        raise AssertionError("nothing raised")

    plain = asyncio.run(call(app))
    framed = asyncio.run(call(framed_app(app)))
    assert without_ours(no_marker(names(framed))) == names(plain)
    assert framed_app(app).__wrapped__ is app


def test_the_aiohttp_middleware_wrapper_and_its_handler_wrapper_leave_no_entry() -> None:
    node = root()

    async def handler(request: Any) -> None:
        raise ValueError("handler failed")

    async def middleware(request: Any, handler: Any) -> Any:  # as OpenTelemetry's awaits it
        token = CURRENT.set(node)
        try:
            return await handler(request)
        finally:
            CURRENT.reset(token)

    async def call(chain: Any) -> BaseException:
        try:
            await chain(None, handler=handler)  # as aiohttp calls a middleware
        except ValueError as exc:
            return exc
        raise AssertionError("nothing raised")

    plain = asyncio.run(call(middleware))
    framed = asyncio.run(call(framed_middleware(middleware)))
    assert without_ours(no_marker(names(framed))) == names(plain)
    assert framed_middleware(middleware).__wrapped__ is middleware


def test_an_async_marker_alone_leaves_no_entry() -> None:
    marker = make_async_marker(SPAN_ID, "GET /boom")

    async def fails() -> None:
        raise KeyError("x")

    async def outer(through: bool) -> BaseException:
        try:
            await (marker(fails) if through else fails())
        except KeyError as exc:
            return exc
        raise AssertionError("nothing raised")

    plain = names(asyncio.run(outer(False)))
    marked = without_the_catching_marker(names(asyncio.run(outer(True))))
    assert marked == plain


def _second_root() -> RootLabels:
    return RootLabels(
        (("span_id", "00000000000000bb"), ("span_name", "GET /other")),
        span_id=0xBB,
        marker_parts=("00000000000000bb", "GET /other", ""),
    )


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_anyio_worker_threads_call_the_function_from_anyios_own_frame(
    monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """Each function anyio's worker runs is called by anyio's frame, inside its own span.

    A ``stacklevel=2`` warning names anyio's worker as without us, tracebacks match, the
    worker threads serve calls of two spans and one of none, each seeing only its own
    marker, and anyio's asyncio worker stops with the event loop (trio's thread cache
    keeps its idle threads a while, by design).
    """
    import anyio
    import anyio.to_thread

    module = importlib.import_module(f"anyio._backends._{backend}")

    def deprecated() -> list[str]:
        warnings.warn("old", DeprecationWarning, stacklevel=2)
        frame: Any = sys._getframe()
        seen = []
        while frame is not None:
            if frame.f_code.co_name.startswith(PREFIX):
                seen.append(frame.f_code.co_filename)
            frame = frame.f_back
        return seen

    async def in_span(node: RootLabels | None) -> list[str]:
        token = CURRENT.set(node)
        try:
            return await anyio.to_thread.run_sync(deprecated)
        finally:
            CURRENT.reset(token)

    async def calls() -> tuple[list[Any], list[str], list[str]]:
        exc: BaseException | None = None
        try:
            await anyio.to_thread.run_sync(failing)
        except ValueError as error:
            exc = error
        assert exc is not None
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            seen = [await in_span(root()), await in_span(_second_root()), await in_span(None)]
        return seen, [f"{w.filename}:{w.lineno}" for w in warned], names(exc)

    def observe() -> tuple[list[Any], list[str], list[str]]:
        before = set(threading.enumerate())
        result = anyio.run(calls, backend=backend)
        for thread in set(threading.enumerate()) - before if backend == "asyncio" else ():
            thread.join(5)
            assert not thread.is_alive(), f"{thread.name} outlived its event loop"
        return result

    plain_seen, plain_warnings, plain_tb = observe()
    assert plain_seen == [[], [], []]
    assert all(f"anyio/_backends/_{backend}.py" in w for w in plain_warnings), plain_warnings
    switch = LabelSwitch(TagRecorder().add, TagRecorder().remove)
    if backend == "asyncio":
        monkeypatch.setattr(module, "WorkerThread", module.WorkerThread)
        handoff._patch_anyio_asyncio(module, switch)
    else:
        monkeypatch.setattr(module, "run_sync", module.run_sync)
        handoff._patch_anyio_trio(module, switch)
    seen, warned, tb = observe()
    assert seen == [["GET /boom"], ["GET /other"], []]
    assert warned == plain_warnings
    assert without_ours(tb) == plain_tb


@pytest.mark.parametrize("in_span", [True, False], ids=["in-root-span", "outside-spans"])
def test_the_wsgi_and_task_wrappers_leave_no_entry(in_span: bool) -> None:
    # A Flask view, a WSGI app and a Celery task body that raise: the framework's handler
    # (and an error tracker) sees the traceback it would see without pyrospan-run.
    from pyrospan_launch.agent.spans import task_frames, wsgi_frames

    switch = LabelSwitch(TagRecorder().add, TagRecorder().remove, frames=True)

    class Flask:
        def dispatch_request(self) -> None:
            failing()

    plain_view = caught(Flask().dispatch_request)
    module = type(sys)("flask.app")
    module.Flask = Flask  # type: ignore[attr-defined]
    wsgi_frames.patch_flask(module, switch)
    plain_app = caught(lambda: failing({}, None))
    framed_app_ = wsgi_frames.framed_wsgi_app(failing, switch)
    plain_task = caught(lambda: failing(3))
    run = task_frames._framed_run(failing, switch)

    token = CURRENT.set(root()) if in_span else None
    try:
        view = caught(Flask().dispatch_request)
        app = caught(lambda: framed_app_({}, None))
        task = caught(lambda: run(3))
    finally:
        if token is not None:
            CURRENT.reset(token)
    assert without_ours(no_marker(names(view))) == names(plain_view)
    assert without_ours(no_marker(names(app))) == names(plain_app)
    assert without_ours(no_marker(names(task))) == names(plain_task)
