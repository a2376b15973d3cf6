"""The signal watch: the wakeup file descriptor taken only when free, wake-ups bounded."""

from __future__ import annotations

import importlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyrospan_launch.agent import signal_watch
from pyrospan_launch.agent.agent import Agent
from pyrospan_launch.agent.signal_watch import SignalWatch


@pytest.fixture
def handled() -> Iterator[list[int]]:
    """SIGUSR1 handled by a Python handler that counts; the previous handler put back."""
    calls: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: calls.append(signum))
    yield calls
    signal.signal(signal.SIGUSR1, previous)


def _wait(condition: object, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.01)  # the main thread takes its signals here
    return False


def test_a_wakeup_descriptor_already_set_stays_and_nothing_is_watched() -> None:
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    try:
        signal.set_wakeup_fd(writer.fileno())
        watch = SignalWatch(signal.SIGUSR1, lambda: True)
        assert watch.start() is False
        assert not watch.watching
        assert signal.set_wakeup_fd(-1) == writer.fileno()
    finally:
        signal.set_wakeup_fd(-1)
        reader.close()
        writer.close()


def test_stop_gives_the_descriptor_back_and_ends_the_helper() -> None:
    before = threading.active_count(), len(os.listdir("/proc/self/task"))
    watch = SignalWatch(signal.SIGUSR1, lambda: False)
    assert watch.start() is True
    assert signal.set_wakeup_fd(-1) != -1  # the watch's, taken back below
    watch.stop()
    assert signal.set_wakeup_fd(-1) == -1
    assert _wait(lambda: (threading.active_count(), len(os.listdir("/proc/self/task"))) == before)


def test_the_main_thread_is_woken_while_the_handler_is_due(handled: list[int]) -> None:
    # due() stays true until the handler has run twice: the first run comes from the
    # signal itself, the second only from the watch's wake-up.
    watch = SignalWatch(signal.SIGUSR1, lambda: len(handled) < 2)
    assert watch.start()
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert _wait(lambda: len(handled) >= 2)
        assert watch.nudged >= 1
    finally:
        watch.stop()


def test_wake_ups_are_bounded_when_the_handler_never_starts(
    handled: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signal_watch, "NUDGES", 3)
    watch = SignalWatch(signal.SIGUSR1, lambda: True)
    assert watch.start()
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert _wait(lambda: watch.nudged == 3)
        time.sleep(signal_watch.GRACE * 4)
        assert watch.nudged == 3
    finally:
        watch.stop()


def test_the_watch_gives_way_when_trio_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Trio warns when it finds a wakeup descriptor set (it sets its own); a stand-in named
    # trio is enough for the import hook.
    (tmp_path / "trio.py").write_text("", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "trio", raising=False)
    agent = Agent()
    watch = SignalWatch(signal.SIGUSR1, lambda: False)
    assert watch.start()
    agent.lifecycle.signal_watch = watch
    try:
        agent.signal_watch_gives_way()
        assert watch.watching
        importlib.import_module("trio")
        watch = watch  # resets mypy's narrowing: the import changed watch.watching
        assert not watch.watching
        assert signal.set_wakeup_fd(-1) == -1
    finally:
        watch.stop()
        agent.import_hooks.uninstall()
        sys.modules.pop("trio", None)


# pytest's own threads make Python 3.12+ warn at the fork; the warning is not the point here.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_the_descriptor_is_left_unset_during_a_fork_then_the_child_has_its_own() -> None:
    watch = SignalWatch(signal.SIGUSR1, lambda: False)
    assert watch.start()
    try:
        ours = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(ours)
        watch.pause()
        assert signal.set_wakeup_fd(-1) == -1  # a child's signal cannot reach our helper
        watch.resume()
        assert signal.set_wakeup_fd(ours) == ours
        parents = os.fstat(ours).st_ino
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: a watch of its own, on another socket
            watch.restart_in_child()
            child = signal.set_wakeup_fd(-1)
            own = watch.watching and child != -1 and os.fstat(child).st_ino != parents
            os.write(write, b"1" if own else b"0")
            os._exit(0)
        os.waitpid(pid, 0)
        assert os.read(read, 1) == b"1"
        os.close(read)
        os.close(write)
    finally:
        watch.stop()
