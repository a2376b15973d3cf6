"""The tag gate of a move to py-spy: calls wait for the new agent, and a lost tag is said once."""

from __future__ import annotations

import threading
import time

import pytest

from pyrospan_launch.agent.tag_gate import TagGate

LOST_LINE = (
    "pyrospan: profiles: thread tags set while this process moved to py-spy were lost, and "
    "stay so until set again (the move took over 0.2 s); set PYROSPAN_SAMPLER=pyspy to start "
    "on py-spy"
)


class Agent:
    """Stands for pyroscope-io's tag functions: records what reached the running agent."""

    def __init__(self, gate: TagGate) -> None:
        self.gate = gate
        self.kept: list[tuple[str, str]] = []
        self.removed: list[tuple[str, str]] = []

    def add(self, key: str, value: str) -> bool:
        if self.gate.moved:
            self.kept.append((key, value))
        return self.gate.moved

    def remove(self, key: str, value: str) -> bool:
        self.removed.append((key, value))
        return self.gate.moved


def open_after(gate: TagGate, seconds: float) -> threading.Thread:
    opener = threading.Timer(seconds, gate.opened)
    opener.start()
    return opener


def test_a_tag_set_during_the_move_waits_for_the_new_agent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    gate = TagGate(2.0)
    agent = Agent(gate)
    add = gate.adding(agent.add)
    opener = open_after(gate, 0.1)
    began = time.monotonic()
    assert add("tenant", "a") is True
    assert 0.05 < time.monotonic() - began < 1.5
    opener.join()
    assert agent.kept == [("tenant", "a")]
    assert capsys.readouterr().err == ""


def test_a_move_that_outlasts_the_wait_loses_tags_and_says_so_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    gate = TagGate(0.2)
    agent = Agent(gate)
    add, remove = gate.adding(agent.add), gate.removing(agent.remove)
    began = time.monotonic()
    add("tenant", "a")
    waited = time.monotonic() - began
    assert 0.15 < waited < 1.0
    # The move is known to be slow: later calls do not wait again.
    began = time.monotonic()
    add("region", "b")
    remove("region", "b")
    assert time.monotonic() - began < 0.1
    assert agent.kept == []
    assert capsys.readouterr().err.splitlines() == [LOST_LINE]
    gate.opened()
    add("tenant", "a")
    assert agent.kept == [("tenant", "a")]
    assert capsys.readouterr().err == ""


def test_removing_before_the_move_ends_is_no_loss(capsys: pytest.CaptureFixture[str]) -> None:
    gate = TagGate(0.1)
    agent = Agent(gate)
    gate.removing(agent.remove)("tenant", "a")
    assert agent.removed == [("tenant", "a")]
    assert capsys.readouterr().err == ""


def test_a_failed_move_is_said_by_the_profiler_not_the_gate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    gate = TagGate(0.1)
    gate.opened(failed=True)
    assert gate.adding(lambda key, value: False)("tenant", "a") is False
    assert capsys.readouterr().err == ""
