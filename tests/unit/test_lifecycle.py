"""The Lifecycle object: exit calls bounded in time, hooks that never raise into the app."""

from __future__ import annotations

import atexit
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from pyrospan_launch.agent import lifecycle, signal_watch
from pyrospan_launch.agent.lifecycle import Lifecycle


@pytest.fixture
def installed() -> Iterator[Lifecycle]:
    """A Lifecycle with its exit handling installed, taken off atexit and SIGTERM after."""
    before = signal.getsignal(signal.SIGTERM)
    if before is not signal.SIG_DFL:
        pytest.skip("SIGTERM is handled by the test runner here")
    functions = signal.signal, signal.getsignal  # ours stand in for them while installed
    agent_lifecycle = Lifecycle()
    agent_lifecycle.install_exit_handling()
    yield agent_lifecycle
    atexit.unregister(agent_lifecycle.flush_at_exit)
    signal.signal, signal.getsignal = functions
    signal.signal(signal.SIGTERM, before)
    if agent_lifecycle.signal_watch is not None:
        agent_lifecycle.signal_watch.stop()


def test_exit_calls_run_once_within_the_deadline(installed: Lifecycle) -> None:
    ran: list[str] = []
    never = threading.Event()
    installed.on_exit("spans", lambda: ran.append("spans"))
    installed.on_exit("stuck backend", never.wait)
    abandoned: list[tuple[list[str], float]] = []
    installed.when_abandoned(lambda names, waited: abandoned.append((names, waited)))
    started = time.monotonic()
    installed.flush_at_exit()
    took = time.monotonic() - started
    assert ran == ["spans"]
    assert abandoned == [(["stuck backend"], lifecycle.EXIT_TIMEOUT)]  # told once
    assert took < lifecycle.EXIT_TIMEOUT + 1.0  # wide margin on a shared machine
    installed.flush_at_exit()  # a second flush waits for the same calls, runs none again
    assert ran == ["spans"]
    never.set()


def test_sigterm_gets_the_flushing_handler(installed: Lifecycle) -> None:
    real_getsignal = signal.getsignal.__wrapped__  # type: ignore[attr-defined]
    assert real_getsignal(signal.SIGTERM) == installed._on_sigterm
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # what the app is told
    # Woken by the signal watch where Python may leave the handler pending (3.14 on).
    assert (installed.signal_watch is not None) == signal_watch.NEEDED


def test_the_signal_watch_finds_the_handler_due_until_it_starts(installed: Lifecycle) -> None:
    # The app is told SIG_DFL; the watch must still see pyrospan's handler installed, or it
    # never wakes the main thread.
    assert installed._sigterm_due()
    installed.sigterm_started = True
    assert not installed._sigterm_due()


def test_without_exit_handling_flush_does_nothing() -> None:
    ran: list[str] = []
    quiet = Lifecycle()
    quiet.on_exit("spans", lambda: ran.append("spans"))
    quiet.flush_at_exit()
    assert ran == []


def test_a_failing_fork_hook_is_reported_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    ran: list[str] = []

    def broken() -> None:
        raise OSError("disk full")

    lifecycle._run([broken, lambda: ran.append("next")], "after fork")
    assert ran == ["next"]
    assert "after fork in pid" in capsys.readouterr().err


def _keyboard_interrupt_caught_in(module_name: str) -> BaseException:
    """A KeyboardInterrupt whose traceback starts in code of ``module_name``."""
    namespace: dict[str, object] = {"__name__": module_name}
    exec(
        "try:\n    raise KeyboardInterrupt\nexcept KeyboardInterrupt as exc:\n    caught = exc\n",
        namespace,
    )
    caught = namespace["caught"]
    assert isinstance(caught, BaseException)
    return caught


@pytest.mark.parametrize(
    ("last", "ending"),
    [
        (lambda: _keyboard_interrupt_caught_in("__main__"), True),  # the script's own code
        (lambda: _keyboard_interrupt_caught_in("runpy"), True),  # python -m
        (lambda: _keyboard_interrupt_caught_in("code"), False),  # an interactive console
        (lambda: ValueError("not an interrupt"), False),
        (lambda: None, False),
    ],
)
def test_only_an_interrupt_that_ended_the_main_code_keeps_dying_of_sigint(
    monkeypatch: pytest.MonkeyPatch, last: object, ending: bool
) -> None:
    import sys

    value = last()  # type: ignore[operator]
    for name in ("last_exc", "last_value"):
        monkeypatch.setattr(sys, name, value, raising=False)
    assert lifecycle._uncaught_keyboard_interrupt() is ending
