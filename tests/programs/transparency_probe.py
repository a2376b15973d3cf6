"""What an app can see of the tool it runs under: tracebacks, tasks, exceptions, warnings.

Run the same way under ``opentelemetry-instrument`` and under ``pyrospan-run``; the
``same`` part of the JSON it prints must be identical.  The ``mode`` part says where a
pyrospan marker frame was on the stack (under pyrospan-run every root span's work must
run inside one, or the comparison proves nothing).  Each section runs inside a root span,
as a request would.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import gc
import inspect
import io
import json
import logging
import re
import signal
import sys
import traceback
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import MutableMapping
    from types import FrameType

# Before anything imports the instrumented libraries: the app's own filters say every
# warning is an error (pytest's ``filterwarnings = error`` does this).  The aiohttp
# server instrumentation subclasses web.Application, which aiohttp warns about.
with warnings.catch_warnings():
    warnings.simplefilter("error")
    try:
        import aiohttp.web

        AIOHTTP_APPLICATION = aiohttp.web.Application.__qualname__
    except ImportError:
        AIOHTTP_APPLICATION = "aiohttp not installed"
    FILTERS_AFTER_IMPORT = [f[0] for f in warnings.filters[:1]]

import anyio.to_thread
import fastapi
import starlette.concurrency
from fastapi.responses import PlainTextResponse
from opentelemetry import trace

tracer = trace.get_tracer("transparency-probe")
SAME: dict[str, Any] = {
    "aiohttp Application under simplefilter('error')": AIOHTTP_APPLICATION,
    "filters kept after the import": FILTERS_AFTER_IMPORT,
}
MODE: dict[str, bool] = {}
MARKER = "pyrospan.span:"


def in_marker() -> bool:
    """True when a pyrospan marker frame is on the stack here."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name.startswith(MARKER):
            return True
        frame = frame.f_back
    return False


def note_marker(where: str) -> None:
    MODE[where] = MODE.get(where, False) or in_marker()


def frames(tb: Any) -> list[str]:
    """A traceback as an error tracker groups it: file, line and function of each entry."""
    return [f"{f.filename}:{f.lineno}:{f.name}" for f in traceback.extract_tb(tb)]


def chain(exc: BaseException | None) -> list[Any]:
    """The exception and its causes and contexts, each with its frames."""
    seen: list[list[object]] = []
    while exc is not None and len(seen) < 5:
        seen.append([type(exc).__name__, str(exc), frames(exc.__traceback__)])
        exc = exc.__cause__ or exc.__context__
    return seen


def logged(exc: BaseException) -> str:
    """What ``logging.exception`` writes for ``exc``."""
    out = io.StringIO()
    logger = logging.getLogger("probe.errors")
    logger.propagate = False
    handler = logging.StreamHandler(out)
    logger.addHandler(handler)
    try:
        logger.error("failed", exc_info=exc)
    finally:
        logger.removeHandler(handler)
    return out.getvalue()


def no_addresses(text: str) -> str:
    return re.sub(r"0x[0-9a-f]+", "0x", text)


# -- a FastAPI app, called as a server would call it -------------------------------------

app = fastapi.FastAPI()
HANDLED: dict[str, Any] = {}
NOTHING: dict[str, str] = {}  # the endpoints raise KeyError from it


@app.get("/boom")
async def boom() -> str:
    note_marker("fastapi async endpoint")
    try:
        NOTHING["missing"]
    except KeyError:
        raise ValueError("async endpoint failed") from None
    return "never"


@app.get("/context")
async def context() -> str:
    try:
        NOTHING["missing"]
    except KeyError:
        raise ValueError("with a context")  # noqa: B904 -- the context is the point
    return "never"


@app.get("/sync")
def sync_boom() -> str:
    note_marker("fastapi def endpoint (anyio worker thread)")
    raise RuntimeError("def endpoint failed")


@app.get("/deprecated")
def deprecated_endpoint() -> str:
    note_marker("fastapi def endpoint that warns")
    warnings.warn("old endpoint", DeprecationWarning, stacklevel=2)
    return "ok"


@app.exception_handler(RuntimeError)
async def on_runtime_error(request: Any, exc: RuntimeError) -> PlainTextResponse:
    HANDLED["exception handler sees"] = chain(exc)
    HANDLED["logging.exception in the handler"] = logged(exc)
    return PlainTextResponse("handled", status_code=500)


async def call_app(path: str) -> Any:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"probe")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message.get("status"))

    try:
        await app(scope, receive, send)
    except Exception as exc:
        return {"sent": sent, "raised": chain(exc), "sys.exc_info": frames(sys.exc_info()[2])}
    return {"sent": sent}


async def fastapi_section() -> None:
    SAME["fastapi async endpoint raises"] = await call_app("/boom")
    SAME["fastapi exception with a context"] = await call_app("/context")
    SAME["fastapi def endpoint, exception handler"] = await call_app("/sync")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await call_app("/deprecated")
    SAME["warning from a fastapi def endpoint, stacklevel=2"] = warned(
        [w for w in caught if str(w.message) == "old endpoint"]
    )
    SAME.update(HANDLED)
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    async def plain_app(scope: Any, receive: Any, send: Any) -> None:
        pass

    SAME["OpenTelemetryMiddleware(app).app is app"] = (
        OpenTelemetryMiddleware(plain_app).app is plain_app
    )


# -- asyncio tasks -------------------------------------------------------------------------


async def fails() -> None:
    note_marker("task step")
    await asyncio.sleep(0)
    raise LookupError("task failed")


def task_view(task: asyncio.Task[Any], coro: Any) -> dict[str, Any]:
    return {
        "isinstance asyncio.Task": isinstance(task, asyncio.Task),
        "type is asyncio.Task": type(task) is asyncio.Task,
        "get_coro() is the coroutine": task.get_coro() is coro,
        "inspect.iscoroutine(get_coro())": inspect.iscoroutine(task.get_coro()),
        "_coro is the coroutine": getattr(task, "_coro", None) is coro,
        "inspect.iscoroutine(_coro)": inspect.iscoroutine(getattr(task, "_coro", None)),
        "repr": no_addresses(repr(task)).split(" cb=")[0],
    }


async def own_task_view() -> dict[str, Any]:
    task = asyncio.current_task()
    assert task is not None
    return task_view(task, task.get_coro())


async def referrers_of_thrown() -> list[str]:
    """anyio's refcycle check: what refers to an exception thrown into a waiting task."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    async def waits() -> None:
        note_marker("task woken with an exception")
        await future

    task = asyncio.ensure_future(waits())
    await asyncio.sleep(0)
    future.set_exception(ConnectionError("refused"))
    try:
        await task
    except ConnectionError as exc:
        caught = exc
    task = future = None  # type: ignore[assignment]
    gc.collect()
    kinds = sorted(type(r).__name__ for r in gc.get_referrers(caught) if r is not SAME)
    SAME["thrown into a task: traceback"] = frames(caught.__traceback__)
    return kinds


async def cancellation() -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def sleeper() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError as exc:
            seen["CancelledError args inside"] = list(exc.args)
            raise

    task = asyncio.ensure_future(sleeper())
    await asyncio.sleep(0)
    task.cancel("stop now")
    if sys.version_info >= (3, 11):
        seen["cancelling() after cancel"] = task.cancelling()
    try:
        await task
    except asyncio.CancelledError as exc:
        seen["CancelledError args outside"] = list(exc.args)
        seen["cancelled traceback"] = frames(exc.__traceback__)
    seen["task.cancelled()"] = task.cancelled()

    task = asyncio.ensure_future(asyncio.sleep(10))
    try:
        await asyncio.wait_for(task, 0.01)
    except asyncio.TimeoutError as exc:
        seen["wait_for timeout"] = [type(exc).__name__, type(exc.__context__).__name__]
    if sys.version_info >= (3, 11):
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(10)
        except TimeoutError as exc:
            seen["asyncio.timeout"] = chain(exc)

        async def child_fails() -> None:
            await asyncio.sleep(0)
            raise KeyError("child")

        async def child_waits() -> None:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                seen["sibling cancelled"] = True
                raise

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(child_waits())
                group.create_task(child_fails())
        except BaseException as exc:  # an ExceptionGroup (a builtin from 3.11)
            seen["TaskGroup raised"] = [type(exc).__name__, str(exc)]
            seen["TaskGroup members"] = [chain(e) for e in exc.exceptions]  # type: ignore[attr-defined]
    return seen


async def eager() -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    factory = getattr(asyncio, "eager_task_factory", None)
    if factory is None:
        return {"eager tasks": "not in this Python"}
    started = []

    async def runs() -> None:
        started.append(True)
        await asyncio.sleep(0)

    loop.set_task_factory(factory)
    try:
        coro = runs()
        task = loop.create_task(coro)
        ran_eagerly = bool(started)
        view = task_view(task, coro)
        await task
    finally:
        loop.set_task_factory(None)
    return {"ran before the first await": ran_eagerly, **view}


async def tasks_section() -> None:
    with tracer.start_as_current_span("tasks"):
        coro = fails()
        task = asyncio.ensure_future(coro)
        SAME["task object"] = task_view(task, coro)
        try:
            await task
        except LookupError as exc:
            SAME["exception out of a task"] = chain(exc)
            SAME["logging.exception of it"] = logged(exc)
        SAME["current_task() inside"] = await asyncio.ensure_future(own_task_view())
        SAME["referrers of an exception thrown into a task"] = await referrers_of_thrown()
        SAME["cancellation"] = await cancellation()
        SAME["eager_task_factory"] = await eager()


# -- threads and warnings -------------------------------------------------------------------


def deprecated_helper(where: str = "thread-pool work item") -> None:
    note_marker(where)
    warnings.warn("old helper", DeprecationWarning, stacklevel=2)


def pool_fails() -> None:
    raise OSError("pool work failed")


def warned(caught: list[warnings.WarningMessage]) -> list[str]:
    return [f"{w.filename}:{w.lineno}:{w.category.__name__}:{w.message}" for w in caught]


def recorded(call: Any) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [f"{w.filename}:{w.lineno}:{w.category.__name__}:{w.message}" for w in caught]


async def threads_section() -> None:
    with tracer.start_as_current_span("threads"), concurrent.futures.ThreadPoolExecutor(1) as pool:
        SAME["warning from a pool work item, stacklevel=2"] = recorded(
            lambda: pool.submit(deprecated_helper).result()
        )
        try:
            pool.submit(pool_fails).result()
        except OSError as exc:
            SAME["exception out of a pool work item"] = chain(exc)
        try:
            await asyncio.to_thread(pool_fails)
        except OSError as exc:
            SAME["exception out of asyncio.to_thread"] = chain(exc)
        # Each function below warns with stacklevel=2, naming whatever called it: the
        # standard library's or anyio's own worker, never a frame of ours.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await anyio.to_thread.run_sync(deprecated_helper, cancellable=True)
        SAME["anyio run_sync(cancellable=True) warnings"] = warned(caught)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await anyio.to_thread.run_sync(deprecated_helper, "anyio worker thread")
            await anyio.to_thread.run_sync(functools.partial(deprecated_helper, "anyio partial"))
        SAME["warning from a function anyio's worker thread runs, stacklevel=2"] = warned(caught)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run_in_threadpool = starlette.concurrency.run_in_threadpool
            await run_in_threadpool(deprecated_helper, where="run_in_threadpool")
        SAME["warning from Starlette's run_in_threadpool, stacklevel=2"] = warned(caught)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await asyncio.to_thread(deprecated_helper, "asyncio.to_thread")
        SAME["warning from asyncio.to_thread, stacklevel=2"] = warned(caught)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, deprecated_helper, "run_in_executor(None)")
            await loop.run_in_executor(pool, deprecated_helper, "run_in_executor(pool)")
        SAME["warning from loop.run_in_executor, stacklevel=2"] = warned(caught)
        try:
            await anyio.to_thread.run_sync(pool_fails)
        except OSError as exc:
            SAME["exception out of anyio.to_thread.run_sync"] = chain(exc)


def signals_section() -> None:
    SAME["signal.getsignal(SIGTERM)"] = repr(signal.getsignal(signal.SIGTERM))

    def mine(signum: int, frame: Any) -> None:
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    SAME["signal.signal(SIGTERM, mine) returned"] = repr(previous)
    SAME["getsignal after"] = signal.getsignal(signal.SIGTERM) is mine
    signal.signal(signal.SIGTERM, previous)
    SAME["getsignal restored"] = repr(signal.getsignal(signal.SIGTERM))


async def main() -> None:
    await fastapi_section()
    await tasks_section()
    await threads_section()
    signals_section()


if __name__ == "__main__":
    asyncio.run(main())
    print(json.dumps({"same": SAME, "mode": MODE}, indent=1, sort_keys=True))
