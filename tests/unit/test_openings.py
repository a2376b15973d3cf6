"""Opening markers: the task step in which a root span opens runs in a marker bound to it.

The table is exercised directly, through the relay's rewrite, and in process through the
task wrapper with a fake profiler (``framed``): what the relay would read from the stack.
The real sampler is exercised in test_e2e_sampler.py.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from types import FrameType

import pytest
from test_relay_rewrite import CAP, LOOP, MAIN, WORK, ProfileBuilder, decoded
from test_span_markers import burn, framed, task_factory
from test_span_profiles import Linked, hex_id

from pyrospan_launch.agent.relay.rewrite import rewrite_raw_profile
from pyrospan_launch.agent.spans import task_steps
from pyrospan_launch.agent.spans.labels import RootLabels
from pyrospan_launch.agent.spans.openings import OPENINGS, UNBOUND, OpeningTable

__all__ = ["framed"]  # a fixture, used by name

SPAN = ("00000000000000aa", "consume", "")


def node(parts: tuple[str, str, str] = SPAN) -> RootLabels:
    return RootLabels((("span_id", parts[0]),), int(parts[0], 16), parts)


def name_of(opening: object) -> str:
    return opening.marker.__code__.co_name  # type: ignore[attr-defined, no-any-return]


def test_a_bound_opening_names_its_span_and_an_unbound_one_nothing() -> None:
    table = OpeningTable()
    bound, unbound = table.new(), table.new()
    root = node()
    assert table.bind(bound, root, bound.began)
    assert root.opening is bound and bound.spent
    assert table.labels(name_of(bound)) == SPAN
    assert table.labels(name_of(unbound)) == UNBOUND
    assert table.labels("pyrospan.span:00000000000000aa") is None  # a span's own marker
    assert table.labels("pyrospan.span:openx") is None


def test_a_span_that_opens_late_in_the_step_is_not_bound() -> None:
    # What ran before it would be labelled with the span too.
    table = OpeningTable()
    opening = table.new()
    assert not table.bind(opening, node(), opening.began + 0.002)
    assert table.labels(name_of(opening)) == UNBOUND and not opening.spent
    assert table.bind(opening, node(), opening.began + 0.0005)


def test_a_second_root_span_in_the_step_withdraws_the_first() -> None:
    table = OpeningTable()
    opening = table.new()
    first, second = node(), node(("00000000000000bb", "next", ""))
    assert table.bind(opening, first, opening.began)
    assert not table.bind(opening, second, opening.began)
    assert table.labels(name_of(opening)) == UNBOUND
    assert first.opening is None and second.opening is None
    assert not table.bind(opening, second, opening.began)  # spent: a third neither


def test_an_ended_span_is_kept_for_three_pushes() -> None:
    table = OpeningTable()
    opening = table.new()
    table.bind(opening, node(), opening.began)
    table.after_push()  # while the span runs, nothing goes
    table.retire(opening)
    for _ in range(3):
        assert table.labels(name_of(opening)) == SPAN
        table.after_push()
    assert table.labels(name_of(opening)) == UNBOUND and len(table) == 0


def test_without_pushes_the_table_stays_within_its_cap() -> None:
    table = OpeningTable(cap=4)
    openings = [table.new() for _ in range(6)]
    for opening in openings:
        table.bind(opening, node(), opening.began)
    assert len(table) == 4
    assert table.labels(name_of(openings[0])) == UNBOUND
    assert table.labels(name_of(openings[-1])) == SPAN


def test_the_relay_labels_a_bound_opening_and_drops_an_unbound_one_with_no_label() -> None:
    bound, unbound = OPENINGS.new(), OPENINGS.new()
    OPENINGS.bind(bound, node(), bound.began)
    builder = ProfileBuilder()
    builder.sample([MAIN, LOOP, (name_of(bound), ""), WORK], 10, pid="7")
    builder.sample([MAIN, LOOP, (name_of(unbound), ""), WORK], 3, pid="7")
    builder.sample([MAIN, LOOP, WORK], 2, pid="7")
    out = decoded(rewrite_raw_profile(builder.bytes(), CAP))
    (labelled,) = [s for s in out.samples if ("span_id", SPAN[0]) in s.label_pairs]
    assert labelled.label_pairs == (("pid", "7"), ("span_id", SPAN[0]), ("span_name", "consume"))
    assert labelled.stack == ("<module>", "run_forever", "handler_work")
    assert labelled.values == (10,)
    plain = [s for s in out.samples if s is not labelled]
    assert {(s.stack, s.label_pairs) for s in plain} == {
        (("<module>", "run_forever", "handler_work"), (("pid", "7"),))
    }
    assert sum(s.values[0] for s in plain) == 5
    assert not any("pyrospan" in frame for s in out.samples for frame in s.stack)


def opening_labels_on_stack() -> list[tuple[str, str, str]]:
    """The labels the relay would give this stack's opening frames, innermost first."""
    found = []
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        labels = OPENINGS.labels(frame.f_code.co_name)
        if labels is not None:
            found.append(labels)
        frame = frame.f_back
    return found


def run_tasks(
    framed: Linked, make: Callable[[str], Coroutine[object, object, object]], names: list[str]
) -> None:
    _, _, _, switch = framed

    async def main() -> None:
        asyncio.get_running_loop().set_task_factory(task_factory(switch))  # type: ignore[arg-type]
        for name in names:
            await asyncio.create_task(make(name))

    asyncio.run(main())


def test_a_function_whose_task_burned_after_opening_runs_its_next_tasks_in_openings(
    framed: Linked,
) -> None:
    tracer, _, _, switch = framed
    switch.openings = True
    seen: dict[str, tuple[str, list[tuple[str, str, str]]]] = {}

    async def consume(name: str) -> None:
        with tracer.start_as_current_span(name) as span:
            burn(0.002)  # in the step that opened the span
            seen[name] = (hex_id(span), opening_labels_on_stack())
            await asyncio.sleep(0)

    run_tasks(framed, consume, ["first", "second", "third"])
    assert len(switch.opening_codes) == 1
    assert seen["first"][1] == []  # learned from it
    for name in ("second", "third"):
        span_id, openings = seen[name]
        assert openings == [(span_id, name, "")], seen


def test_a_step_begun_by_a_thrown_exception_runs_in_the_opening_too(framed: Linked) -> None:
    # A recovery path: the future the task awaited failed, and the step that the
    # exception thrown in begins opens the span.
    tracer, _, _, switch = framed
    switch.openings = True
    seen: dict[str, tuple[str, list[tuple[str, str, str]]]] = {}

    async def recover(name: str) -> None:
        failing = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(failing.set_exception, ConnectionError(name))
        try:
            await failing
        except ConnectionError:
            with tracer.start_as_current_span(name) as span:
                burn(0.002)  # in the step that the throw began
                seen[name] = (hex_id(span), opening_labels_on_stack())
                await asyncio.sleep(0)

    run_tasks(framed, recover, ["first", "second", "third"])
    assert len(switch.opening_codes) == 1
    assert seen["first"][1] == []  # learned from it
    for name in ("second", "third"):
        span_id, openings = seen[name]
        assert openings == [(span_id, name, "")], seen


def test_a_task_that_burns_before_opening_its_span_gets_no_binding(framed: Linked) -> None:
    tracer, _, _, switch = framed
    switch.openings = True
    said: list[float] = []
    switch.unmarked_opening = lambda node, ms: said.append(ms)
    seen: list[list[tuple[str, str, str]]] = []

    async def prepare_then_open(name: str) -> None:
        burn(0.003)  # outside any span: must not be labelled with the one below
        with tracer.start_as_current_span(name):
            burn(0.025)
            seen.append(opening_labels_on_stack())
            await asyncio.sleep(0)

    run_tasks(framed, prepare_then_open, ["first", "second"])
    assert seen == [[], [UNBOUND]]
    assert len(said) == 1 and said[0] >= 25  # learned from the first, said of the second


def test_short_opening_steps_teach_nothing_until_they_add_up_to_a_millisecond(
    framed: Linked,
) -> None:
    tracer, _, _, switch = framed
    switch.openings = True
    burns = {"a": 0.0001, "b": 0.0001, "c": 0.0006, "d": 0.0006}

    async def quick(name: str) -> None:
        with tracer.start_as_current_span(name):
            burn(burns[name])
            await asyncio.sleep(0)

    run_tasks(framed, quick, ["a", "b"])
    assert len(switch.opening_codes) == 0  # a marker per span would cost more than this
    run_tasks(framed, quick, ["c", "d"])
    assert len(switch.opening_codes) == 1


def test_an_opening_that_cannot_be_made_leaves_the_task_running_plain(
    framed: Linked, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracer, _, _, switch = framed
    switch.openings = True
    seen: list[list[tuple[str, str, str]]] = []

    async def consume(name: str) -> str:
        with tracer.start_as_current_span(name):
            burn(0.002)
            seen.append(opening_labels_on_stack())
            await asyncio.sleep(0)
        return name

    run_tasks(framed, consume, ["first"])
    assert len(switch.opening_codes) == 1

    def broken() -> None:
        raise MemoryError("no code object")

    monkeypatch.setattr(OPENINGS, "new", broken)
    run_tasks(framed, consume, ["second", "third"])
    assert seen == [[], [], []]


def test_a_span_opened_in_a_task_step_run_inside_another_tasks_opening_does_not_take_it(
    framed: Linked,
) -> None:
    # An eager task's first step runs inside the step that created it: a root span it
    # opens would otherwise bind the creator's opening, and the rest of the creator's step
    # would be labelled with it.
    tracer, _, _, switch = framed
    switch.openings = True
    seen: dict[str, list[tuple[str, str, str]]] = {}

    async def child() -> None:
        with tracer.start_as_current_span("child"):
            seen["child"] = opening_labels_on_stack()
            await asyncio.sleep(0)

    async def creator(name: str) -> None:
        if name == "second":
            inner = task_steps.LabelledCoroutine(child(), switch)
            try:
                inner.send(None)  # as an eager task's first step runs
            finally:
                inner.close()
            seen["creator after"] = opening_labels_on_stack()
        with tracer.start_as_current_span(name):
            burn(0.002)
            await asyncio.sleep(0)

    run_tasks(framed, creator, ["first", "second"])
    assert seen["child"] == [UNBOUND]  # the creator's opening, not bound by the child
    assert seen["creator after"] == [UNBOUND]
