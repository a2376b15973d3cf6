"""In-process tests of span linking with the real OpenTelemetry SDK and runtime context.

The profiler's tag functions are replaced by a recorder here; the end-to-end tests check
the same behaviour with the real profiler and the receiver.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import opentelemetry.context
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from tag_recorder import TagRecorder

from pyrospan_launch.agent import otel_compat
from pyrospan_launch.agent.spans import span_context
from pyrospan_launch.agent.spans.handoff import run_as
from pyrospan_launch.agent.spans.labels import CURRENT, LabelSwitch
from pyrospan_launch.agent.spans.span_profiles import SpanProfileProcessor
from pyrospan_launch.agent.spans.task_steps import LabelledCoroutine

Linked = tuple[trace.Tracer, TagRecorder, InMemorySpanExporter, LabelSwitch]


def build(switching: bool, monkeypatch: pytest.MonkeyPatch, api: str = "shortcuts") -> Linked:
    """A provider with the processor, with pyrospan's runtime context or without it.

    ``api`` "public" makes the processor and the runtime context use only the SDK's public
    API, as they do where otel_compat finds a private field changed: same results.
    """
    recorder = TagRecorder()
    exporter = InMemorySpanExporter()
    switch = LabelSwitch(recorder.add, recorder.remove)
    shortcuts = otel_compat.PUBLIC if api == "public" else otel_compat.detect()
    processor = SpanProfileProcessor(switch, context_switching=switching, sdk_shortcuts=shortcuts)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    if switching:
        runtime = span_context.LabelSwitchingRuntimeContext()
        runtime.bind(processor, switch)
        monkeypatch.setattr(opentelemetry.context, "_RUNTIME_CONTEXT", runtime)
    return provider.get_tracer("test"), recorder, exporter, switch


@pytest.fixture(
    params=[
        ("context-switching", "shortcuts"),
        ("start-end", "shortcuts"),
        ("context-switching", "public"),
        ("start-end", "public"),
    ],
    ids="-".join,
)
def linked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Linked:
    """Both modes: what holds for plain threads whichever runtime context is in use."""
    mode, api = request.param
    return build(mode == "context-switching", monkeypatch, api)


@pytest.fixture(params=["shortcuts", "public"])
def switching(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Linked:
    """pyrospan's runtime context: labels follow the running context."""
    return build(True, monkeypatch, request.param)


def make(sampler: Sampler | None = None) -> tuple[trace.Tracer, TagRecorder, InMemorySpanExporter]:
    recorder = TagRecorder()
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)  # None: the default, as when not passed
    switch = LabelSwitch(recorder.add, recorder.remove)
    provider.add_span_processor(SpanProfileProcessor(switch, context_switching=False))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), recorder, exporter


def hex_id(span: trace.Span) -> str:
    return format(span.get_span_context().span_id, "016x")


def test_root_span_gets_profile_id_and_thread_labels_while_open(linked: Linked) -> None:
    tracer, tags, exporter, _ = linked
    with tracer.start_as_current_span("GET /cart") as span:
        assert tags.current() == {"span_id": hex_id(span), "span_name": "GET /cart"}
    assert tags.current() == {}
    (finished,) = exporter.get_finished_spans()
    assert finished.attributes is not None
    assert finished.attributes["pyroscope.profile.id"] == hex_id(span)


def test_child_span_keeps_root_labels_and_gets_no_attribute(linked: Linked) -> None:
    tracer, tags, exporter, _ = linked
    with tracer.start_as_current_span("root") as root, tracer.start_as_current_span("child"):
        assert tags.current()["span_id"] == hex_id(root)
    child = next(s for s in exporter.get_finished_spans() if s.name == "child")
    assert child.attributes is not None and "pyroscope.profile.id" not in child.attributes


def test_span_with_remote_parent_is_a_local_root(linked: Linked) -> None:
    tracer, tags, exporter, _ = linked
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    context = trace.set_span_in_context(NonRecordingSpan(remote))
    with tracer.start_as_current_span("server", context=context) as span:
        assert tags.current()["span_id"] == hex_id(span)
    (finished,) = exporter.get_finished_spans()
    assert finished.attributes is not None and "pyroscope.profile.id" in finished.attributes


def test_unsampled_spans_get_nothing() -> None:
    tracer, tags, exporter = make(sampler=ParentBased(ALWAYS_OFF))
    with tracer.start_as_current_span("dropped"):
        assert tags.current() == {}
    assert exporter.get_finished_spans() == ()


def test_nested_local_roots_replace_then_restore_labels(linked: Linked) -> None:
    tracer, tags, _, _ = linked
    with tracer.start_as_current_span("outer") as outer:
        with tracer.start_as_current_span("job", context=opentelemetry.context.Context()) as inner:
            assert tags.current()["span_id"] == hex_id(inner)  # never both at once
        assert tags.current() == {"span_id": hex_id(outer), "span_name": "outer"}
    assert tags.current() == {}


def test_threads_carry_their_own_root_span(linked: Linked) -> None:
    tracer, tags, _, _ = linked
    seen: dict[str, str] = {}
    barrier = threading.Barrier(2)

    def request(name: str) -> None:
        with tracer.start_as_current_span(name) as span:
            barrier.wait()
            seen[name] = tags.current()["span_id"]
            assert seen[name] == hex_id(span)
            barrier.wait()

    threads = [threading.Thread(target=request, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen["a"] != seen["b"]


def test_span_ended_on_another_thread_leaves_no_labels(switching: Linked) -> None:
    tracer, tags, _, _ = switching
    span = tracer.start_span("handed-over")
    with trace.use_span(span, end_on_exit=False):
        assert tags.current()["span_id"] == hex_id(span)
        ender = threading.Thread(target=span.end)
        ender.start()
        ender.join()
    # Left the span's context: the thread shows nothing, though another thread ended it.
    assert tags.current() == {}


def test_asyncio_task_steps_show_their_own_root_span(switching: Linked) -> None:
    tracer, tags, _, switch = switching
    seen: dict[str, list[dict[str, str]]] = {}

    async def request(name: str) -> None:
        with tracer.start_as_current_span(name) as span:
            for _ in range(3):
                seen.setdefault(name, []).append(tags.current())
                await asyncio.sleep(0)
            assert all(t["span_id"] == hex_id(span) for t in seen[name])

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(
            lambda loop, coro, **kw: asyncio.Task(LabelledCoroutine(coro, switch), loop=loop, **kw)
        )
        await asyncio.gather(request("a"), request("b"), request("c"))
        assert tags.current() == {}  # between steps, the loop thread shows nothing

    asyncio.run(main())
    assert len({seen[n][0]["span_id"] for n in "abc"}) == 3


def test_thread_pool_work_runs_with_submitters_labels(switching: Linked) -> None:
    tracer, tags, _, switch = switching
    with ThreadPoolExecutor(1) as pool, tracer.start_as_current_span("submit") as span:
        node = CURRENT.get()
        assert node is not None
        inside = pool.submit(run_as(node, switch, tags.current)).result()
        after = pool.submit(tags.current).result()
    assert inside == {"span_id": hex_id(span), "span_name": "submit"}
    assert after == {}


def test_a_span_id_tag_never_shows_without_the_spans_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # py-spy reads a thread's tags when it processes a sample, which can fall between two
    # tag calls: at every step, a thread with a span_id must carry that span's name too.
    tracer, tags, _, switch = build(False, monkeypatch)
    steps: list[dict[str, str]] = []

    def checked(call: Callable[[str, str], None]) -> Callable[[str, str], None]:
        def tag(key: str, value: str) -> None:
            call(key, value)
            steps.append(tags.current())

        return tag

    switch.retarget(checked(tags.add), checked(tags.remove))
    with (
        tracer.start_as_current_span("outer"),
        tracer.start_as_current_span("job", context=opentelemetry.context.Context()),
    ):
        pass
    assert steps and tags.current() == {}
    assert all("span_name" in step for step in steps if "span_id" in step), steps


def test_a_sampler_that_reads_no_tags_gets_none_and_tags_come_back_with_one(
    switching: Linked,
) -> None:
    """Under the Stack sampler no tag is set; once py-spy reads them, the next change sets them."""
    tracer, tags, _, switch = switching
    added: list[tuple[tuple[str, str], ...]] = []
    add, remove = switch.tag_functions()

    def noted_add(k: str, v: str) -> None:
        added.append(((k, v),))
        add(k, v)

    switch.retarget(noted_add, remove)
    switch.tags_read = False
    with tracer.start_as_current_span("GET /quiet") as quiet:
        assert switch.shown() is CURRENT.get() is not None  # still tracked per thread
        assert tags.current() == {}
    assert switch.shown() is None and tags.current() == {}
    with tracer.start_as_current_span("GET /moved") as moved:
        switch.tags_read = True  # the process moved to py-spy mid-span
        switch.reapply()  # what the profiler does for the moving thread
        assert tags.current() == {"span_id": hex_id(moved), "span_name": "GET /moved"}
        with tracer.start_as_current_span("job", context=opentelemetry.context.Context()) as inner:
            assert tags.current()["span_id"] == hex_id(inner)
        assert tags.current()["span_id"] == hex_id(moved)
    assert tags.current() == {}
    assert hex_id(quiet) not in {v for pairs in added for _, v in pairs}


def test_the_samplers_thread_check_runs_once_per_thread() -> None:
    """Profiler.see_current_thread is asked at a thread's first root span, until it settles."""
    processor = SpanProfileProcessor(LabelSwitch(TagRecorder().add, TagRecorder().remove))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    asked: list[str] = []
    answers = iter([False, True])  # not settled yet, then settled

    def see() -> bool:
        asked.append(threading.current_thread().name)
        return next(answers, True)

    processor.foreign_thread = see
    for name in ("a", "b", "c"):
        with tracer.start_as_current_span(name), tracer.start_as_current_span("child"):
            pass
    assert asked == ["MainThread", "MainThread"]  # asked again only while not settled
    other = threading.Thread(target=lambda: tracer.start_span("d").end(), name="other")
    other.start()
    other.join()
    assert asked == ["MainThread", "MainThread", "other"]
