"""Threads started inside blocked_for_new_threads leave the app's signals to the app's threads."""

from __future__ import annotations

import os
import signal
import threading

from pyrospan_launch.agent import native
from pyrospan_launch.agent.main_signals import (
    KEPT_FOR_MAIN,
    ForkedChildMask,
    blocked_for_new_threads,
    blocked_for_threads_forks_restart,
)


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


def test_the_forked_child_mask_blocks_the_apps_signals_and_puts_the_mask_back() -> None:
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    mask = ForkedChildMask()
    mask.block()
    try:
        assert signal.pthread_sigmask(signal.SIG_BLOCK, []) >= KEPT_FOR_MAIN
    finally:
        mask.restore()
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before
    mask.restore()  # a second restore (no block before it) changes nothing
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before


def test_a_thread_an_at_fork_hook_registered_inside_starts_blocks_the_apps_signals() -> None:
    reports: list[set[int]] = []
    armed = [True]  # for this test's fork only: hooks stay registered in the test process

    def start_thread_in_child() -> None:
        if armed[0]:
            reports.append(mask_of_new_thread())

    with blocked_for_threads_forks_restart():
        os.register_at_fork(after_in_child=start_thread_in_child)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child only
        still_open = signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
        blocked = reports[-1] >= KEPT_FOR_MAIN if reports else False
        os.write(write_end, f"{blocked} {still_open}".encode())
        os._exit(0)
    armed[0] = False
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        said = pipe.read()
    os.waitpid(child, 0)
    # The hook's thread blocks the app's signals; the forking thread has its mask back.
    assert said == "True True"
