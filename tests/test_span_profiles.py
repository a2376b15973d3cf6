"""In-process tests of the span-profile processor with the real OpenTelemetry SDK.

The profiler's tag functions are replaced by a recorder here; the end-to-end tests check
the same behaviour with the real profiler and the receiver.
"""

from __future__ import annotations

import threading

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from pyrospan_launch.span_profiles import SpanProfileProcessor, ThreadLabels


class TagRecorder:
    """Tracks the labels each thread carries, like pyroscope-io's thread tags."""

    def __init__(self) -> None:
        self.by_thread: dict[int, set[tuple[str, str]]] = {}

    def add(self, key: str, value: str) -> None:
        self.by_thread.setdefault(threading.get_ident(), set()).add((key, value))

    def remove(self, key: str, value: str) -> None:
        self.by_thread.setdefault(threading.get_ident(), set()).discard((key, value))

    def current(self) -> dict[str, str]:
        tags = self.by_thread.get(threading.get_ident(), set())
        keys = [k for k, _ in tags]
        assert len(keys) == len(set(keys)), f"a key carries two values: {tags}"
        return dict(tags)


def make(sampler: object | None = None) -> tuple[trace.Tracer, TagRecorder, InMemorySpanExporter]:
    recorder = TagRecorder()
    exporter = InMemorySpanExporter()
    provider = TracerProvider(**({"sampler": sampler} if sampler else {}))
    provider.add_span_processor(SpanProfileProcessor(ThreadLabels(recorder.add, recorder.remove)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), recorder, exporter


def hex_id(span: trace.Span) -> str:
    return format(span.get_span_context().span_id, "016x")


def test_root_span_gets_profile_id_and_thread_labels_while_open() -> None:
    tracer, tags, exporter = make()
    with tracer.start_as_current_span("GET /cart") as span:
        assert tags.current() == {"span_id": hex_id(span), "span_name": "GET /cart"}
    assert tags.current() == {}
    (finished,) = exporter.get_finished_spans()
    assert finished.attributes is not None
    assert finished.attributes["pyroscope.profile.id"] == hex_id(span)


def test_child_span_keeps_root_labels_and_gets_no_attribute() -> None:
    tracer, tags, exporter = make()
    with tracer.start_as_current_span("root") as root, tracer.start_as_current_span("child"):
        assert tags.current()["span_id"] == hex_id(root)
    child = next(s for s in exporter.get_finished_spans() if s.name == "child")
    assert child.attributes is not None and "pyroscope.profile.id" not in child.attributes


def test_span_with_remote_parent_is_a_local_root() -> None:
    tracer, tags, exporter = make()
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


def test_nested_local_roots_replace_then_restore_labels() -> None:
    tracer, tags, _ = make()
    with tracer.start_as_current_span("outer") as outer:
        with tracer.start_as_current_span("job", context=trace.Context()) as inner:
            assert tags.current()["span_id"] == hex_id(inner)  # never both at once
        assert tags.current() == {"span_id": hex_id(outer), "span_name": "outer"}
    assert tags.current() == {}


def test_threads_carry_their_own_root_span() -> None:
    tracer, tags, _ = make()
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
