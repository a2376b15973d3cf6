"""Marker frames in process: task steps and pool items run inside their root span's marker.

Thread tags are recorded by a fake (the real profiler is exercised end to end in
test_e2e_exact_spans.py); what is checked here is what the sampler would read: the
marker frames on the stack of the running code, and which tags are set meanwhile.
"""

from __future__ import annotations

import asyncio
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor

import opentelemetry.context
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tag_recorder import TagRecorder
from test_span_profiles import Linked, hex_id

from pyrospan_launch.agent.spans import span_context
from pyrospan_launch.agent.spans.aiohttp_frames import framed_middleware, patch_aiohttp_server
from pyrospan_launch.agent.spans.asgi_frames import framed_app
from pyrospan_launch.agent.spans.handoff import run_as
from pyrospan_launch.agent.spans.labels import CURRENT, LabelSwitch
from pyrospan_launch.agent.spans.span_markers import parse
from pyrospan_launch.agent.spans.span_profiles import SpanProfileProcessor
from pyrospan_launch.agent.spans.task_steps import LabelledCoroutine, stepping_coroutine


def markers_on_stack() -> list[tuple[str, str, str]]:
    """What the relay would read from this thread's stack: the markers, innermost first."""
    found = []
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None:
        parsed = parse(frame.f_code.co_name, frame.f_code.co_filename)
        if parsed is not None:
            found.append(parsed)
        frame = frame.f_back
    return found


@pytest.fixture
def framed(monkeypatch: pytest.MonkeyPatch) -> Linked:
    recorder = TagRecorder()
    switch = LabelSwitch(recorder.add, recorder.remove, frames=True)
    processor = SpanProfileProcessor(switch)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    runtime = span_context.LabelSwitchingRuntimeContext()
    runtime.bind(processor, switch)
    monkeypatch.setattr(opentelemetry.context, "_RUNTIME_CONTEXT", runtime)
    return provider.get_tracer("test"), recorder, InMemorySpanExporter(), switch


def task_factory(switch: LabelSwitch) -> object:
    return lambda loop, coro, **kw: asyncio.Task(LabelledCoroutine(coro, switch), loop=loop, **kw)


def test_every_later_step_runs_inside_the_marker_and_sets_no_tag(framed: Linked) -> None:
    tracer, tags, _, switch = framed
    seen: dict[str, list[tuple[list[tuple[str, str, str]], dict[str, str]]]] = {}

    async def request(name: str) -> None:
        with tracer.start_as_current_span(name) as span:
            # The step the span started in has no marker: tags for the rest of it.
            assert tags.current()["span_id"] == hex_id(span)
            await asyncio.sleep(0)
            for _ in range(3):
                with tracer.start_as_current_span("child"):
                    seen.setdefault(name, []).append((markers_on_stack(), tags.current()))
                await asyncio.sleep(0)

    async def main() -> None:
        asyncio.get_running_loop().set_task_factory(task_factory(switch))  # type: ignore[arg-type]
        await asyncio.gather(request("a"), request("b"))
        assert tags.current() == {}

    asyncio.run(main())
    for name, steps in seen.items():
        for markers, step_tags in steps:
            assert [(m[1], m[2]) for m in markers] == [(name, "")]
            assert step_tags == {}  # the marker labels the samples: no tag, no native call
    assert seen["a"][0][0][0][0] != seen["b"][0][0][0][0]


def test_a_root_span_started_inside_a_marked_step_is_tagged_for_that_step_only(
    framed: Linked,
) -> None:
    tracer, tags, _, switch = framed

    async def request() -> None:
        with tracer.start_as_current_span("outer"):
            await asyncio.sleep(0)
            assert tags.current() == {}
            with tracer.start_as_current_span("job", context=opentelemetry.context.Context()):
                # A new root inside the outer's marker: its tags win until it ends.
                assert tags.current()["span_name"] == "job"
            assert tags.current() == {}

    async def main() -> None:
        asyncio.get_running_loop().set_task_factory(task_factory(switch))  # type: ignore[arg-type]
        await asyncio.create_task(request())
        assert tags.current() == {}

    asyncio.run(main())


def test_pool_items_run_inside_the_submitters_marker(framed: Linked) -> None:
    tracer, tags, _, switch = framed
    with ThreadPoolExecutor(1) as pool, tracer.start_as_current_span("submit") as span:
        node = CURRENT.get()
        assert node is not None
        inside = pool.submit(run_as(node, switch, lambda: (markers_on_stack(), tags.current())))
        markers, item_tags = inside.result()
        after = pool.submit(markers_on_stack).result()
    assert markers == [(hex_id(span), "submit", "")]
    assert item_tags == {}
    assert after == []


def test_asgi_app_is_awaited_inside_the_request_spans_async_marker(framed: Linked) -> None:
    tracer, tags, _, switch = framed
    seen: list[tuple[list[tuple[str, str, str]], dict[str, str]]] = []
    step_markers: list[object] = []

    async def app(scope: object, receive: object, send: object) -> None:
        seen.append((markers_on_stack(), tags.current()))  # the step the span started in
        for _ in range(2):
            await asyncio.sleep(0)
            seen.append((markers_on_stack(), tags.current()))

    async def middleware() -> None:
        with tracer.start_as_current_span("GET /x") as span:
            await framed_app(app, stepping_coroutine)({}, None, None)
            node = CURRENT.get()
            assert node is not None
            step_markers.append(node.step_marker)
            # The app returned: a later step of the span runs in a marker of its own.
            await asyncio.sleep(0)
            seen.append((markers_on_stack(), tags.current()))
        assert {m[0] for step, _ in seen for m in step} == {hex_id(span)}

    async def main() -> None:
        asyncio.get_running_loop().set_task_factory(task_factory(switch))  # type: ignore[arg-type]
        await asyncio.create_task(middleware())

    asyncio.run(main())
    # Every step of the app: the async marker alone, and no tag.  The task's steps made no
    # marker of their own: one marker code per request (the Stack sampler's frame cache).
    assert [len(markers) for markers, _ in seen[:3]] == [1, 1, 1]
    assert [step_tags for _, step_tags in seen[1:3]] == [{}, {}]
    assert step_markers == [None]
    assert len(seen[3][0]) == 1 and seen[3][1] == {}  # after the app: the step's own marker


def test_an_aiohttp_handler_is_awaited_inside_the_request_spans_async_marker(
    framed: Linked,
) -> None:
    tracer, tags, _, switch = framed
    seen: list[tuple[list[tuple[str, str, str]], dict[str, str]]] = []
    step_markers: list[object] = []
    spans: list[str] = []

    async def handler(request: object) -> str:
        seen.append((markers_on_stack(), tags.current()))  # the step the span opened in
        for _ in range(2):
            await asyncio.sleep(0)
            seen.append((markers_on_stack(), tags.current()))
        return "response"

    async def otel_middleware(request: object, handler: object) -> object:
        # What OpenTelemetry's aiohttp server middleware does around the handler.
        with tracer.start_as_current_span("GET /x") as span:
            spans.append(hex_id(span))
            response = await handler(request)  # type: ignore[operator]
            node = CURRENT.get()
            assert node is not None
            step_markers.append(node.step_marker)
            return response

    otel_middleware.__middleware_version__ = 1  # type: ignore[attr-defined]
    middleware = framed_middleware(otel_middleware, stepping_coroutine)
    assert middleware.__middleware_version__ == 1  # aiohttp calls it new-style, as before

    async def main() -> object:
        asyncio.get_running_loop().set_task_factory(task_factory(switch))  # type: ignore[arg-type]
        return await asyncio.create_task(middleware(object(), handler=handler))

    assert asyncio.run(main()) == "response"
    # Every step of the handler, the first included: the async marker alone, and no step
    # marker made (one marker code per request).  The later steps set no tag either.
    assert [markers for markers, _ in seen] == [[(spans[0], "GET /x", "")]] * 3
    assert [step_tags for _, step_tags in seen[1:]] == [{}, {}]
    assert step_markers == [None]


def test_the_aiohttp_server_instrumentation_is_patched_in_both_its_forms() -> None:
    async def middleware(request: object, handler: object) -> object:
        return await handler(request)  # type: ignore[operator]

    middleware.__middleware_version__ = 1  # type: ignore[attr-defined]
    made: list[object] = []

    def create_aiohttp_middleware(tracer_provider: object = None) -> object:
        made.append(tracer_provider)
        return middleware

    module = types.ModuleType("opentelemetry.instrumentation.aiohttp_server")
    module.middleware = middleware  # type: ignore[attr-defined]
    module.create_aiohttp_middleware = create_aiohttp_middleware  # type: ignore[attr-defined]
    patch_aiohttp_server(module)
    patch_aiohttp_server(module)  # a second import hook call changes nothing
    created = module.create_aiohttp_middleware(tracer_provider="provider")
    assert made == ["provider"]
    for framed_one in (module.middleware, created):
        assert framed_one.__wrapped__ is middleware
        assert framed_one.__middleware_version__ == 1

    with pytest.raises(RuntimeError, match="has no middleware to frame"):
        patch_aiohttp_server(types.ModuleType("opentelemetry.instrumentation.aiohttp_server"))


def burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def opening_steps(framed: Linked, burn_first: float, asgi: bool) -> list[tuple[str, float]]:
    """What is said of a task whose first step opens a root span, burns, then awaits."""
    tracer, _, _, switch = framed
    said: list[tuple[str, float]] = []
    switch.unmarked_opening = lambda node, ms: said.append((node.marker_parts[1], ms))  # type: ignore[index]

    async def app(scope: object, receive: object, send: object) -> None:
        burn(burn_first)
        await asyncio.sleep(0)
        burn(0.001)

    async def task() -> None:
        with tracer.start_as_current_span("opening"):
            if asgi:
                await framed_app(app, stepping_coroutine)({}, None, None)
            else:
                await app({}, None, None)

    async def main() -> None:
        asyncio.get_running_loop().set_task_factory(task_factory(switch))  # type: ignore[arg-type]
        await asyncio.create_task(task())

    asyncio.run(main())
    return said


def test_cpu_burned_in_the_step_that_opened_a_span_is_said_with_its_milliseconds(
    framed: Linked,
) -> None:
    (said,) = opening_steps(framed, 0.03, asgi=False)
    assert said[0] == "opening" and 30 <= said[1] < 200, said


def test_a_short_opening_step_or_one_that_runs_in_the_asgi_marker_is_not_said(
    framed: Linked,
) -> None:
    assert opening_steps(framed, 0.002, asgi=False) == []
    assert opening_steps(framed, 0.03, asgi=True) == []


def test_tags_mode_makes_no_marker() -> None:
    switch = LabelSwitch(lambda k, v: None, lambda k, v: None)
    processor = SpanProfileProcessor(switch)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    with provider.get_tracer("t").start_as_current_span("x") as span:
        node = processor.roots[span.get_span_context().span_id]
        assert node.marker is None
        assert run_as(node, switch, markers_on_stack)() == []
        assert node.marker is None and node.async_marker is None


def test_a_root_span_on_a_plain_thread_makes_no_marker_until_its_work_runs_in_one() -> None:
    switch = LabelSwitch(lambda k, v: None, lambda k, v: None, frames=True)
    processor = SpanProfileProcessor(switch)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    with provider.get_tracer("t").start_as_current_span("GET /thread") as span:
        node = processor.roots[span.get_span_context().span_id]
        assert node.marker is None  # served on this thread: no marker made
        assert node.marker_parts == (hex_id(span), "GET /thread", "")
        inside = run_as(node, switch, markers_on_stack)
        assert inside() == [(hex_id(span), "GET /thread", "")]
        node = node  # resets mypy's narrowing: inside() made node.marker
        made = node.marker
        assert made is not None
        inside()
        assert node.marker is made  # made once, then kept


def test_fastapi_endpoints_are_awaited_inside_the_marker_too(framed: Linked) -> None:
    from types import SimpleNamespace

    from pyrospan_launch.agent.spans.asgi_frames import patch_fastapi_endpoints

    tracer, _, _, switch = framed
    seen: list[list[tuple[str, str, str]]] = []

    async def run_endpoint_function(*, values: dict[str, int]) -> int:
        seen.append(markers_on_stack())
        return values["x"]

    routing = SimpleNamespace(run_endpoint_function=run_endpoint_function)
    patch_fastapi_endpoints(routing)  # type: ignore[arg-type]

    async def request() -> int:
        with tracer.start_as_current_span("GET /e") as span:
            result: int = await routing.run_endpoint_function(values={"x": 7})
        assert seen == [[(hex_id(span), "GET /e", "")]]
        return result

    async def main() -> int:
        asyncio.get_running_loop().set_task_factory(task_factory(switch))  # type: ignore[arg-type]
        return await asyncio.create_task(request())

    assert asyncio.run(main()) == 7
    # Outside any root span it is the endpoint alone.
    seen.clear()
    assert asyncio.run(routing.run_endpoint_function(values={"x": 1})) == 1
    assert seen == [[]]


def test_fastapis_leaf_marker_waits_until_the_sampler_can_cut_stacks_short() -> None:
    # With whole stacks (the Stack sampler's CPU timers) the request's marker near the root
    # is always read: FastAPI's endpoint stays as it is, two frames fewer on every resume.
    # A move to py-spy, whose samples can lose the root, puts the leaf marker in.
    from types import SimpleNamespace

    from pyrospan_launch.agent.spans import handoff

    async def run_endpoint_function(*, values: dict[str, int]) -> int:
        return values["x"]

    switch = LabelSwitch(TagRecorder().add, TagRecorder().remove, frames=True)
    switch.set_whole_stacks(True)
    routing = SimpleNamespace(run_endpoint_function=run_endpoint_function)
    handoff._patch_fastapi(routing, switch)  # type: ignore[arg-type]
    assert routing.run_endpoint_function is run_endpoint_function
    switch.set_whole_stacks(False)
    routing = routing  # resets mypy's narrowing: the switch wrapped the function
    assert routing.run_endpoint_function.__wrapped__ is run_endpoint_function

    # A sampler that cuts stacks from the start (py-spy, the wall-clock loop): at once.
    other = SimpleNamespace(run_endpoint_function=run_endpoint_function)
    handoff._patch_fastapi(other, LabelSwitch(TagRecorder().add, TagRecorder().remove, frames=True))  # type: ignore[arg-type]
    assert other.run_endpoint_function.__wrapped__ is run_endpoint_function


def test_a_leaf_marker_put_off_that_fails_later_is_one_line_and_the_move_goes_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The put-off patch runs inside the profiler's move to py-spy, not in an import hook.
    from types import SimpleNamespace

    from pyrospan_launch.agent.spans import handoff

    switch = LabelSwitch(TagRecorder().add, TagRecorder().remove, frames=True)
    switch.set_whole_stacks(True)
    routing = SimpleNamespace(__name__="fastapi.routing")  # no run_endpoint_function
    handoff._patch_fastapi(routing, switch)  # type: ignore[arg-type]
    switch.set_whole_stacks(False)  # raises nothing
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "span labels for fastapi.routing unavailable: AttributeError:" in err
