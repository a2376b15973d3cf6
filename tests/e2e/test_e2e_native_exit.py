"""The exit guard with glibc's real exit handlers, in forked Python processes.

Its C callback is Python code called through ctypes: run after Python was finalized, it
crashes the process.  Here a registration never outlives finalization, in the process
that armed it or in a forked child that inherited it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import PROGRAMS


def run_guard(child: str, parent: str) -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, str(PROGRAMS / "exit_guard.py"), child, parent],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.returncode, done.stdout.splitlines()


@pytest.mark.parametrize("parent", ["finalizes", "c-exit"])
@pytest.mark.parametrize("child", ["finalizes", "arms"])
def test_the_guard_stops_once_in_each_armed_process_and_never_crashes(
    child: str, parent: str
) -> None:
    code, lines = run_guard(child, parent)
    assert code == 0, lines
    ended = [line.split() for line in lines if line.startswith("child ")]
    assert len(ended) == 1 and ended[0][-1] == "0", lines  # the child's exit code
    child_pid = ended[0][1]
    parent_pid = next(line.split()[1] for line in lines if line.startswith("parent "))
    stopped = [line for line in lines if line.startswith("stopped in ")]
    expected = [f"stopped in {parent_pid}"]
    if child == "arms":
        expected.insert(0, f"stopped in {child_pid}")
    assert stopped == expected, lines


@pytest.mark.parametrize("how", ["signalled", "signalled-beside-a-thread"])
def test_a_stop_signal_during_the_flush_waits_for_it(how: str) -> None:
    # Its handler calls exit() again: without the guard holding it, the rest of the exit
    # handlers (the native destructors) ran under the flush, and the process ended there.
    # A process-directed signal lands on any thread that does not block it: beside another
    # thread, blocking it on the flushing thread alone was not enough.
    code, lines = run_guard("-", how)
    pid = lines[0].split()[1]
    assert lines == [f"parent {pid}", f"stopped in {pid}; destroyed meanwhile: False"], code
    assert code == 0


def test_a_flush_still_running_native_code_ends_the_process_before_the_destructors() -> None:
    # Past its deadline the last window's flush may still be inside pyroscope-io: the
    # handlers registered before the guard (the module's destructors) must not run under
    # it.  The process ends with exit()'s own status instead.
    code, lines = run_guard("-", "unsettled")
    assert code == 7, lines
    assert len(lines) == 1 and lines[0].startswith("stopped in "), lines  # never "destroyed"
