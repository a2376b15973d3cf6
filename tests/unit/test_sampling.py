"""Which sampler ``PYROSPAN_SAMPLER`` and the process give, and the reason said for it."""

from __future__ import annotations

import sys

import pytest

from pyrospan_launch.settings.config import resolve
from pyrospan_launch.settings.sampling import Sampling, choose

NEW, OLD, OLDEST = (3, 13), (3, 11), (3, 10)


@pytest.mark.parametrize(
    ("asked", "labels", "kwargs", "sampler", "reason"),
    [
        ("auto", "frames", {"python": NEW}, "stack", "CPython 3.13 has per-thread CPU timers"),
        ("auto", "frames", {"python": OLD}, "stack", "CPython 3.11: its wall-clock loop"),
        ("auto", "frames", {"python": OLDEST}, "stack", "CPython 3.10: its wall-clock loop"),
        ("auto", "tags", {"python": NEW}, "pyspy", "span labels are thread tags"),
        ("auto", "frames", {"python": NEW, "tracing": False}, "pyspy", "tracing is off"),
        ("auto", "frames", {"python": NEW, "oncpu": False}, "pyspy", "wall-clock profiles"),
        ("stack", "frames", {"python": NEW}, "stack", "as asked"),
        ("stack", "frames", {"python": OLD}, "stack", "wall-clock loop before CPython 3.12"),
        ("stack", "tags", {"python": NEW}, "pyspy", "only py-spy reads"),
        ("stack", "frames", {"python": NEW, "oncpu": False}, "pyspy", "counts CPU time only"),
        ("pyspy", "frames", {"python": NEW}, "pyspy", "as asked"),
    ],
)
def test_the_choice_and_its_reason(
    asked: str, labels: str, kwargs: dict[str, object], sampler: str, reason: str
) -> None:
    sampling = choose(asked, labels, **kwargs)  # type: ignore[arg-type]
    assert sampling.sampler == sampler
    assert reason in sampling.reason
    assert sampling.asked == asked


def test_without_tracing_labels_are_tags() -> None:
    assert choose("auto", "frames", tracing=False, python=NEW).labels == "tags"


def test_moving_to_pyspy_keeps_the_labels_and_says_why() -> None:
    stack = choose("auto", "frames", python=NEW)
    moved = stack.on_pyspy("a root span outside any boundary")
    assert (moved.sampler, moved.labels, moved.asked) == ("pyspy", "frames", "auto")
    assert moved.describe() == "py-spy (auto: a root span outside any boundary)"
    assert stack.with_tags("no relay") == Sampling("pyspy", "tags", "auto", "no relay")


def test_the_configuration_resolves_the_choice_once() -> None:
    config = resolve({"PYROSPAN_SAMPLER": "auto"})
    assert config.sampler == "auto"
    assert config.sampling.sampler == "stack"
    bad = resolve({"PYROSPAN_SAMPLER": "fast"})
    assert [str(e) for e in bad.errors] == [
        "PYROSPAN_SAMPLER='fast': expected auto, stack or pyspy"
    ]


@pytest.mark.parametrize(
    ("version", "target"), [((3, 11), 0.01), ((3, 12), 0.003), ((3, 13), 0.003)]
)
def test_the_stack_samplers_loop_aims_lower_where_cpu_timers_take_the_samples(
    monkeypatch: pytest.MonkeyPatch, version: tuple[int, int], target: float
) -> None:
    # With CPU timers the loop only wakes up; before 3.12 it is the sampler itself.
    from pyrospan_launch.agent import profiler

    calls: list[tuple[object, ...]] = []

    class Native:
        def configure_experimental_stack_profiler(self, *args: object) -> bool:
            calls.append(args)
            return True

    monkeypatch.setattr(sys, "version_info", (*version, 0, "final", 0))  # profiler reads it
    profiler._tune_stack_sampler(Native(), 100)
    (args,) = calls
    _, max_threads, adaptive, overhead = args[:4]
    assert (max_threads, adaptive, overhead) == (0, True, target)
    assert args[-1] == 10  # ms between CPU-timer ticks at 100 Hz


@pytest.mark.parametrize(
    ("version", "sample_rate", "wait"),
    [
        ((3, 13), 1, 0.5),
        ((3, 13), 100, 0.5),
        ((3, 11), 100, 0.5),
        ((3, 11), 2, 0.75),
        ((3, 11), 1, 1.5),
    ],
)
def test_tag_calls_wait_for_a_move_as_long_as_the_wall_clock_loop_takes_to_stop(
    monkeypatch: pytest.MonkeyPatch, version: tuple[int, int], sample_rate: int, wait: float
) -> None:
    # Before 3.12 stopping the Stack sampler waits for its loop's next turn, at the rate.
    from pyrospan_launch.agent import profiler

    monkeypatch.setattr(sys, "version_info", (*version, 0, "final", 0))  # profiler reads it
    assert profiler._move_wait(sample_rate) == wait
