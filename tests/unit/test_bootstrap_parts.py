"""The bootstrap's parts, in-process: each fails on its own, with one line, and has one state.

The profiler, OpenTelemetry and the span processor are fakes here (the steps that would
start them raise or do nothing); the subprocess tests in ``tests/e2e`` run the real ones.
"""

from __future__ import annotations

from collections.abc import Iterator

import opentelemetry.context  # noqa: F401 - loaded, so the bootstrap picks no context
import pytest
from tag_recorder import TagRecorder

from pyrospan_launch.agent.agent import ARMED, FAILED, OFF, ON, Agent
from pyrospan_launch.agent.bootstrap import Bootstrap
from pyrospan_launch.agent.spans.labels import LabelSwitch
from pyrospan_launch.settings.config import resolve

BOOTSTRAP_DIR = "/opt/pyrospan/_bootstrap"
STEPS = ("_start_profiler", "_start_tracing", "_link_spans", "_hand_on")


class FakeParts(Bootstrap):
    """A bootstrap whose steps record that they ran; the one named ``broken`` raises."""

    def __init__(self, broken: str, **settings: str) -> None:
        self.environ_given = {"PYTHONPATH": f"{BOOTSTRAP_DIR}:/app/lib", **settings}
        self.exited: list[int] = []
        config = resolve(self.environ_given)
        super().__init__(
            Agent(),
            config,
            bootstrap_dir=BOOTSTRAP_DIR,
            environ=self.environ_given,
            exit=self.exited.append,
        )
        self.broken = broken
        self.ran: list[str] = []
        self.agent.watch_lifecycle = lambda: self._step("watch_lifecycle")  # type: ignore[method-assign]

    def _step(self, name: str) -> None:
        if name == self.broken:
            raise RuntimeError(f"{name} broke")
        self.ran.append(name)

    def _start_profiler(self) -> None:
        self._step("_start_profiler")
        recorder = TagRecorder()
        self._labels = LabelSwitch(recorder.add, recorder.remove)

    def _start_tracing(self) -> None:
        self._step("_start_tracing")

    def _link_spans(self) -> None:
        self._step("_link_spans")

    def _hand_on(self) -> None:
        self._step("_hand_on")
        super()._hand_on()


_made: list[FakeParts] = []


@pytest.fixture(autouse=True)
def _forget_import_hooks() -> Iterator[None]:
    """Armed tracing watches imports: no later test may start a bootstrap made here."""
    yield
    while _made:
        _made.pop().agent.import_hooks.uninstall()


def _parts(broken: str = "", **settings: str) -> FakeParts:
    made = FakeParts(broken, **settings)
    _made.append(made)
    return made


def _eager(broken: str = "", **settings: str) -> FakeParts:
    return _parts(broken, PYROSPAN_EAGER_INSTRUMENTATION="true", **settings)


def _states(agent: Agent) -> dict[str, str]:
    return {
        "profiling": agent.profiling,
        "tracing": agent.tracing,
        "linking": agent.linking,
        "children": agent.children,
        "exit_handling": agent.exit_handling,
    }


def test_every_part_on_when_nothing_breaks(capsys: pytest.CaptureFixture[str]) -> None:
    bootstrap = _eager()
    bootstrap.run()
    assert _states(bootstrap.agent) == dict.fromkeys(_states(bootstrap.agent), ON)
    assert bootstrap.ran == [*STEPS[:3], "watch_lifecycle", "_hand_on"]
    assert bootstrap.environ_given["PYTHONPATH"].split(":")[0] == BOOTSTRAP_DIR
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("broken", "line", "expected"),
    [
        pytest.param(
            "_start_profiler",
            "pyrospan: profiling disabled: RuntimeError: _start_profiler broke",
            # Without the profiler's labels there is nothing to link spans to.
            {"profiling": FAILED, "tracing": ON, "linking": OFF, "children": ON},
            id="profiler",
        ),
        pytest.param(
            "_start_tracing",
            "pyrospan: tracing disabled: RuntimeError: _start_tracing broke",
            # Without OpenTelemetry there are no spans to link.
            {"profiling": ON, "tracing": FAILED, "linking": OFF, "children": ON},
            id="tracing",
        ),
        pytest.param(
            "_link_spans",
            "pyrospan: span profiles disabled: RuntimeError: _link_spans broke",
            {"profiling": ON, "tracing": ON, "linking": FAILED, "children": ON},
            id="linking",
        ),
        pytest.param(
            "_hand_on",
            "pyrospan: instrumenting child programs disabled: RuntimeError: _hand_on broke",
            {"profiling": ON, "tracing": ON, "linking": ON, "children": FAILED},
            id="children",
        ),
    ],
)
def test_a_failing_part_leaves_the_others_running_with_one_line(
    broken: str, line: str, expected: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    bootstrap = _eager(broken)
    bootstrap.run()
    states = _states(bootstrap.agent)
    assert {part: states[part] for part in expected} == expected
    assert states["exit_handling"] == ON
    assert capsys.readouterr().err.splitlines() == [line]
    assert bootstrap.agent.failures == [line.removeprefix("pyrospan: ")]
    assert bootstrap.exited == []


def test_strict_mode_exits_with_status_3_on_a_failure(capsys: pytest.CaptureFixture[str]) -> None:
    bootstrap = _eager("_start_tracing", PYROSPAN_STRICT="true")
    bootstrap.run()
    assert bootstrap.exited == [3]
    assert capsys.readouterr().err.splitlines() == [
        "pyrospan: tracing disabled: RuntimeError: _start_tracing broke "
        "(PYROSPAN_STRICT=true: exiting before the app starts)"
    ]


def test_tracing_and_linking_are_armed_until_the_first_use() -> None:
    bootstrap = _parts()
    bootstrap.run()
    agent = bootstrap.agent
    assert (agent.profiling, agent.tracing, agent.linking) == (ON, ARMED, ARMED)
    assert "_start_tracing" not in bootstrap.ran
    # The app's first use starts them (what the import hook calls).
    bootstrap.start_opentelemetry()
    assert (agent.tracing, agent.linking) == (ON, ON)


def test_an_armed_link_is_off_when_tracing_then_fails(capsys: pytest.CaptureFixture[str]) -> None:
    bootstrap = _parts("_start_tracing")
    bootstrap.run()
    bootstrap.start_opentelemetry()
    assert (bootstrap.agent.tracing, bootstrap.agent.linking) == (FAILED, OFF)
    assert capsys.readouterr().err.splitlines() == [
        "pyrospan: tracing disabled: RuntimeError: _start_tracing broke"
    ]


def test_parts_not_asked_for_stay_off() -> None:
    bootstrap = _parts(
        "", PYROSPAN_PROFILING="false", PYROSPAN_TRACING="false", PYROSPAN_CHILDREN="false"
    )
    bootstrap.run()
    assert set(_states(bootstrap.agent).values()) == {OFF}
    assert bootstrap.ran == []
    # PYROSPAN_CHILDREN=false: the bootstrap directory stays off PYTHONPATH.
    assert bootstrap.environ_given["PYTHONPATH"] == "/app/lib"
