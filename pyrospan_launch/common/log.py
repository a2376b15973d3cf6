"""The bootstrap's voice: one-line notices on stderr, and step-by-step lines when debugging.

Everything the bootstrap says starts with ``pyrospan:`` so that users can tell it apart
from their program's own output, and tests can match on it.  Debug lines also carry the
PID, because one run often holds several processes (prefork servers, spawned children).
"""

from __future__ import annotations

import os
import sys

from pyrospan_launch.settings.parsers import LOG_LEVELS as LEVELS

_level_index = LEVELS.index("warning")


def set_level(level: str) -> None:
    """Show messages at ``level`` and above (one of :data:`LEVELS`)."""
    global _level_index
    _level_index = LEVELS.index(level)


def debug_enabled() -> bool:
    """True when step-by-step debug lines are wanted."""
    return _level_index == 0


def _emit(level: str, message: str) -> None:
    if LEVELS.index(level) < _level_index:
        return
    prefix = f"pyrospan[{level} pid={os.getpid()}]" if debug_enabled() else "pyrospan"
    try:
        sys.stderr.write(f"{prefix}: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        # stderr closed or missing (daemons, pythonw): never fail the app over a message.
        pass


def debug(message: str) -> None:
    """A step of the bootstrap, shown only with PYROSPAN_LOG_LEVEL=debug."""
    _emit("debug", message)


def info(message: str) -> None:
    """Something a user may want to know but that needs no action."""
    _emit("info", message)


def warning(message: str) -> None:
    """Something did not work; the app goes on without that part."""
    _emit("warning", message)


def error(message: str) -> None:
    """A failure that ends the run (strict mode)."""
    _emit("error", message)
