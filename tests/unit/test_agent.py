"""The Agent object and the runtime context bound to it, built in-process by the test."""

from __future__ import annotations

from collections.abc import Iterator

import opentelemetry.context
import pytest
from opentelemetry.sdk.trace import TracerProvider
from tag_recorder import TagRecorder

from pyrospan_launch.agent import agent as the_agent
from pyrospan_launch.agent.agent import Agent
from pyrospan_launch.agent.spans import span_context
from pyrospan_launch.agent.spans.labels import LabelSwitch
from pyrospan_launch.agent.spans.span_profiles import SpanProfileProcessor


@pytest.fixture
def as_current() -> Iterator[None]:
    """Whatever agent the test makes current, the process's own is back after it."""
    before = the_agent.current()
    yield
    the_agent.make_current(before)


@pytest.fixture
def linked_agent(as_current: None) -> tuple[Agent, TagRecorder]:
    """An agent of the test's own, current only for the test."""
    recorder = TagRecorder()
    agent = Agent()
    labels = LabelSwitch(recorder.add, recorder.remove)
    agent.link_context(SpanProfileProcessor(labels, context_switching=True), labels)
    the_agent.make_current(agent)
    return agent, recorder


def test_a_new_agent_has_started_nothing() -> None:
    agent = Agent()
    assert (agent.profiling, agent.tracing, agent.linking, agent.children) == ("off",) * 4
    assert agent.processor is None and agent.labels is None and agent.failures == []
    assert Agent().lifecycle is not agent.lifecycle  # nothing shared between agents


def test_a_runtime_context_made_later_binds_itself_to_the_current_agent(
    linked_agent: tuple[Agent, TagRecorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    agent, recorder = linked_agent
    # OpenTelemetry creates the context through the entry point, with no arguments.
    runtime = span_context.LabelSwitchingRuntimeContext()
    monkeypatch.setattr(opentelemetry.context, "_RUNTIME_CONTEXT", runtime)
    provider = TracerProvider()
    assert agent.processor is not None
    provider.add_span_processor(agent.processor)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("root") as root:
        shown = recorder.current()
        assert shown["span_id"] == format(root.get_span_context().span_id, "016x")
        assert shown["span_name"] == "root"
    assert recorder.current() == {}
    provider.shutdown()


def test_without_an_agent_the_runtime_context_is_opentelemetrys_own(as_current: None) -> None:
    the_agent.make_current(None)
    runtime = span_context.LabelSwitchingRuntimeContext()
    context = opentelemetry.context.Context({"key": "value"})
    token = runtime.attach(context)
    assert runtime.get_current() is context
    runtime.detach(token)
    assert runtime.get_current() is not context


def test_bind_running_binds_the_context_opentelemetry_uses(
    linked_agent: tuple[Agent, TagRecorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    agent, recorder = linked_agent
    the_agent.make_current(None)
    runtime = span_context.LabelSwitchingRuntimeContext()  # made before linking: unbound
    monkeypatch.setattr(opentelemetry.context, "_RUNTIME_CONTEXT", runtime)
    span_context.bind_running(agent)
    provider = TracerProvider()
    assert agent.processor is not None
    provider.add_span_processor(agent.processor)
    with provider.get_tracer("test").start_as_current_span("bound"):
        assert recorder.current().get("span_name") == "bound"
    provider.shutdown()
