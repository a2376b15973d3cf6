"""The exit helpers: calls run together, only when told, once, and are abandoned at the deadline."""

from __future__ import annotations

import functools
import threading
import time

from pyrospan_launch.agent import bounded


def test_nothing_runs_before_begin_and_each_call_runs_once() -> None:
    calls: list[str] = []
    standby = bounded.Standby([("a", lambda: calls.append("a")), ("b", lambda: calls.append("b"))])
    time.sleep(0.1)
    assert calls == [] and not standby.started
    standby.begin(5)
    standby.begin(5)
    assert standby.wait() == []
    assert standby.wait() == []  # a second waiter sees them finished too
    assert sorted(calls) == ["a", "b"]


def test_wait_gives_up_at_the_deadline_naming_what_did_not_finish() -> None:
    release = threading.Event()
    standby = bounded.Standby([("quick", lambda: None), ("stuck", lambda: release.wait(30))])
    started = time.monotonic()
    standby.begin(0.3)
    assert standby.wait() == ["stuck"]
    assert 0.25 <= time.monotonic() - started < 2
    # A later waiter does not wait again: the deadline has passed.
    again = time.monotonic()
    assert standby.wait() == ["stuck"]
    assert time.monotonic() - again < 0.1
    release.set()


def test_calls_run_concurrently_within_one_deadline() -> None:
    standby = bounded.Standby([(name, lambda: time.sleep(0.3)) for name in "abc"])
    started = time.monotonic()
    standby.begin(2)
    assert standby.wait() == []
    assert time.monotonic() - started < 0.8


def test_a_call_that_raises_counts_as_finished() -> None:
    def broken() -> None:
        raise RuntimeError("backend exploded")

    standby = bounded.Standby([("broken", broken)])
    standby.begin(2)
    assert standby.wait() == []


def test_helpers_are_known_by_their_native_ids() -> None:
    ran_on: list[int] = []
    standby = bounded.Standby([("a", lambda: ran_on.append(threading.get_native_id()))])
    standby.begin(2)
    assert standby.wait() == []
    assert ran_on[0] in bounded.helper_thread_ids()
    assert ran_on[0] != threading.get_native_id()


def test_wait_before_begin_returns_at_once() -> None:
    standby = bounded.Standby([("a", lambda: None)])
    assert standby.wait() == []
    standby.begin(1)
    assert standby.wait() == []


def test_a_begin_interrupted_halfway_is_completed_by_the_next() -> None:
    # A signal handler can run between any two steps of the first begin(): say it had set
    # the deadline and told the first helper only.  The handler's begin() tells the rest.
    ran: list[str] = []
    standby = bounded.Standby([(n, functools.partial(ran.append, n)) for n in "ab"])
    standby._deadline = time.monotonic() + 2
    standby._helpers[0].go.release()
    standby.begin(2)
    assert standby.wait() == []
    assert sorted(ran) == ["a", "b"]


def test_a_call_past_the_deadline_can_still_be_waited_for_by_name() -> None:
    release = threading.Event()
    standby = bounded.Standby([("slow", lambda: time.sleep(0.4)), ("stuck", release.wait)])
    assert standby.wait_for("slow", 0.01)  # not begun: nothing runs to wait for
    standby.begin(0.05)
    assert sorted(standby.wait()) == ["slow", "stuck"]
    assert standby.wait_for("slow", 5)  # it ends within the extra time
    started = time.monotonic()
    assert not standby.wait_for("stuck", 0.2)
    assert 0.15 <= time.monotonic() - started < 2
    release.set()
    assert standby.wait_for("stuck", 5)
    assert standby.wait_for("no such call", 0)
