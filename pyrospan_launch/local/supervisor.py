"""Run the program as a child process, pass SIGINT and SIGTERM on to it, return its status.

Local mode cannot exec: the launcher must outlive the program to write the report.  So
it stays in the foreground with the child and relays the signals a supervisor receives
(``kill``, ``docker stop``, systemd).  One exception: a Ctrl-C typed in a terminal reaches
the whole foreground process group, the child included, so relaying it would deliver it
twice, and a second SIGINT means "quit now" to servers such as uvicorn.  Like ``uv run``
(astral-sh/uv#13925), the launcher relays SIGINT only when the child is not the
terminal's foreground process group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Final

FORWARDED: Final = (signal.SIGINT, signal.SIGTERM)


def exit_status(returncode: int) -> int:
    """A shell's view of a child's status: ``128 + N`` when signal N ended it."""
    return 128 - returncode if returncode < 0 else returncode


def terminal_delivered(child_pid: int) -> bool:
    """True when a terminal's Ctrl-C reaches the child directly (it is in the foreground)."""
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            if os.isatty(fd):
                return os.tcgetpgrp(fd) == os.getpgid(child_pid)
    return False


def run(
    path: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    debug: Callable[[str], None] | None = None,
) -> int:
    """Run ``argv`` (``path`` is the resolved executable) and return its exit status.

    Must be called from the main thread (signal handlers live there).  Raises
    ``OSError`` when the program cannot be started.  ``debug`` hears each signal's fate.
    """
    child: subprocess.Popen[bytes] | None = None
    early: list[int] = []

    def relay(signum: int, _frame: FrameType | None) -> None:
        if child is None:
            early.append(signum)  # arrived while the child was being started
            return
        name = signal.Signals(signum).name
        if signum == signal.SIGINT and terminal_delivered(child.pid):
            if debug:
                debug(f"{name} came from the terminal, which sent it to the program too")
            return
        if debug:
            debug(f"relaying {name} to pid {child.pid}")
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, relay) for sig in FORWARDED}
    try:
        child = subprocess.Popen(list(argv), executable=path, env=dict(env))
        for signum in early:
            relay(signum, None)
        return exit_status(child.wait())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
