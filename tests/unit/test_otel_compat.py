"""Unit tests: the private SDK fields pyrospan-run may read are detected on the installed SDK.

`make test-otel` runs these against the oldest and the newest supported OpenTelemetry
sets, as `make test` does against the one in .venv; tests/test_span_profiles.py runs
every linking test through both the shortcuts and the public API.
"""

from __future__ import annotations

from importlib.metadata import version

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from pyrospan_launch.agent import otel_compat


def test_every_shortcut_holds_on_the_installed_sdk() -> None:
    # Across the supported range the SDK keeps these fields; a release that changes one
    # makes the hot paths take the public API, and this test says which field moved.
    found = otel_compat.detect()
    assert (found.span_fields, found.attributes, found.span_key is not None) == (
        True,
        True,
        True,
    ), f"opentelemetry-sdk {version('opentelemetry-sdk')}: {found!r}"


def test_detection_runs_once_per_process() -> None:
    assert otel_compat.shortcuts() is otel_compat.shortcuts()


def test_the_span_key_reads_what_get_current_span_reads() -> None:
    key = otel_compat.detect().span_key
    assert key is not None
    span = TracerProvider().get_tracer("t").start_span("s")
    context = trace.set_span_in_context(span)
    assert context.get(key) is trace.get_current_span(context) is span


def test_objects_without_the_fields_take_the_public_api() -> None:
    class Elsewhere:
        """A span of another SDK: only the public API."""

        name = "child"
        parent = None

        def get_span_context(self) -> object:
            return object()

    assert otel_compat._span_fields_match(Elsewhere(), None) is False
    assert otel_compat._attribute_dict_usable(Elsewhere()) is False
    public = otel_compat.PUBLIC
    assert (public.span_fields, public.attributes, public.span_key) == (False, False, None)


def test_redirect_spans_sends_old_tracers_spans_to_the_new_provider() -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    ours, theirs = TracerProvider(), TracerProvider()
    kept, forwarded = InMemorySpanExporter(), InMemorySpanExporter()
    ours.add_span_processor(SimpleSpanProcessor(kept))
    theirs.add_span_processor(SimpleSpanProcessor(forwarded))
    handed_out = ours.get_tracer("before")
    replaced = otel_compat.redirect_spans(ours, theirs)
    assert replaced is not None and len(replaced) == 1
    handed_out.start_span("late").end()
    assert [s.name for s in forwarded.get_finished_spans()] == ["late"]
    assert kept.get_finished_spans() == ()


def test_without_the_sdk_fields_nothing_is_taken_over() -> None:
    import types

    assert otel_compat.redirect_spans(object(), TracerProvider()) is None
    assert otel_compat.make_global(types.SimpleNamespace(), TracerProvider()) is False
