"""Move the process to py-spy before the app takes a signal the Stack sampler needs.

The Stack sampler handles three signals itself (seen in ``/proc/self/status``):
SIGPROF, which its per-thread CPU timers send, and SIGSEGV and SIGBUS, under which it
copies the memory it samples.  An app that sets its own handler for one of them, or
calls ``faulthandler.enable()`` after the profiler started (pyroscope-io's docstring:
the sampler then stops sampling), would lose every profile without a word, or worse:
billiard's pool workers (Celery prefork) exit on SIGPROF, so the first timer tick
killed them.  :class:`StackGuard` wraps ``signal.signal`` and ``faulthandler.enable``
and ``register``: before such a call goes through, the profiler moves to py-spy (its
timers stopped), with one line.  Handlers set before the profiler started chain
as pyroscope-io documents, and are left alone.
"""

from __future__ import annotations

import faulthandler
import functools
import signal
from collections.abc import Callable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The signals the Stack sampler's native code handles, with what it uses each for.
TAKEN = {
    signal.SIGPROF: "its CPU timers' signal",
    signal.SIGSEGV: "under which it copies sampled memory",
    signal.SIGBUS: "under which it copies sampled memory",
}


class StackGuard:
    """Calls ``on_taken(reason)`` before the app replaces a signal handler of the sampler.

    ``active`` says whether the Stack sampler runs now; after ``on_taken`` the guard
    stays installed but passes every call straight through.
    """

    def __init__(self, on_taken: Callable[[str], object], active: Callable[[], bool]) -> None:
        self._on_taken = on_taken
        self._active = active
        self._originals: list[tuple[Any, str, Any]] = []

    def install(self) -> None:
        """Wrap ``signal.signal``, ``faulthandler.enable`` and ``faulthandler.register``."""
        if self._originals:
            return
        self._wrap(signal, "signal", self._signal_reason)
        self._wrap(faulthandler, "enable", self._faulthandler_reason)
        self._wrap(faulthandler, "register", self._register_reason)

    def uninstall(self) -> None:
        """Put the originals back."""
        for module, name, original in self._originals:
            setattr(module, name, original)
        self._originals.clear()

    def _wrap(self, module: Any, name: str, reason: Callable[..., str | None]) -> None:
        original = getattr(module, name)
        guard = self

        @functools.wraps(original)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if guard._active():
                why = reason(*args, **kwargs)
                if why is not None:
                    guard._on_taken(why)
            return original(*args, **kwargs)

        self._originals.append((module, name, original))
        setattr(module, name, guarded)

    @staticmethod
    def _signal_reason(signalnum: Any = None, *_: Any, **__: Any) -> str | None:
        taken = _taken(signalnum)
        if taken is None:
            return None
        return f"the app sets its own {taken}"

    @staticmethod
    def _faulthandler_reason(*_: Any, **__: Any) -> str | None:
        return (
            "the app enables faulthandler after the profiler started, which replaces the "
            "Stack sampler's SIGSEGV and SIGBUS handlers"
        )

    @staticmethod
    def _register_reason(signum: Any = None, *_: Any, **__: Any) -> str | None:
        taken = _taken(signum)
        if taken is None:
            return None
        return f"the app registers faulthandler's {taken}"


def _taken(signalnum: Any) -> str | None:
    """``SIGPROF handler (the Stack sampler's ...)`` for a signal it handles, else None."""
    try:
        number = signal.Signals(signalnum)
    except (TypeError, ValueError):
        return None  # the original call raises its own error
    use = TAKEN.get(number)
    if use is None:
        return None
    return f"{number.name} handler, a signal the Stack sampler handles ({use})"
