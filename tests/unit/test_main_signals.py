"""Threads started inside blocked_for_new_threads leave the app's signals to the app's threads."""

from __future__ import annotations

import signal
import threading

from pyrospan_launch.agent import native
from pyrospan_launch.agent.main_signals import KEPT_FOR_MAIN, blocked_for_new_threads


def mask_of_new_thread(thread_class: type[threading.Thread] = threading.Thread) -> set[int]:
    """The signals a thread of ``thread_class`` blocks once it runs."""
    seen: list[set[int]] = []

    def record() -> None:
        seen.append(set(signal.pthread_sigmask(signal.SIG_BLOCK, [])))

    thread = thread_class(target=record)
    thread.start()
    thread.join()
    return seen[0]


def test_a_thread_started_inside_blocks_the_apps_signals_and_the_caller_gets_its_mask_back() -> (
    None
):
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    with blocked_for_new_threads():
        inside = mask_of_new_thread()
    assert {signal.SIGINT, signal.SIGTERM} <= KEPT_FOR_MAIN <= inside
    assert signal.SIGPROF not in inside  # the Stack sampler's timers reach every thread
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before
    assert signal.SIGINT not in mask_of_new_thread()  # outside it, threads are as they were


def test_our_own_threads_start_with_the_apps_signals_blocked() -> None:
    assert mask_of_new_thread(native.Thread) >= KEPT_FOR_MAIN
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
