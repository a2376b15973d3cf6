"""gevent and eventlet, once the app monkey-patched with them: what the exit flush must do instead.

After ``monkey.patch_all()`` (gevent) or ``eventlet.monkey_patch()``, the threads the
app's libraries start are greenlets: OpenTelemetry's span exporter among them, when the
SDK started after the patching.  The exit flush normally runs each exit call on a helper
thread of its own (:mod:`pyrospan_launch.agent.bounded`); a real thread cannot wake or
wait for a greenlet (eventlet refuses outright, gevent never delivers the wake-up), so
in a patched process the calls run on the greenlet that flushes, each bounded by the
library's own ``Timeout``.

Both libraries also run a Python signal handler inside their event loop, where nothing
may wait.  gevent's loop runs a greenlet spawned there at once: the SIGTERM flush runs on
one.  eventlet's loop goes back to its wait (up to a minute) first, so there the flush
runs on the helper threads: the profiles are sent, the span exporter's last batch is not
(one line at start says so).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import import_module

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Green:
    """The monkey-patching library of this process: its timeout, spawn and event-loop check."""

    def __init__(
        self,
        name: str,
        timeout: Callable[[float], Any],
        spawn: Callable[..., Any],
        in_loop: Callable[[], bool],
        *,
        spawn_from_signal: bool,
    ) -> None:
        self.name = name
        # True when a greenlet spawned by a signal handler runs before the loop waits again.
        self.spawn_from_signal = spawn_from_signal
        self.timeout = timeout  # a context manager that interrupts a wait after N seconds
        self.spawn = spawn
        self.in_loop = in_loop  # True when called from the library's event loop


def patched() -> Green | None:
    """gevent or eventlet when it patched ``threading`` in this process, else None."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and _safely(lambda: monkey.is_module_patched("threading")):
        gevent = import_module("gevent")
        hub = import_module("gevent.hub")

        def in_gevent_loop() -> bool:
            return isinstance(gevent.getcurrent(), hub.Hub)

        return Green("gevent", gevent.Timeout, gevent.spawn, in_gevent_loop, spawn_from_signal=True)
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None and _safely(lambda: patcher.is_monkey_patched("thread")):
        eventlet = import_module("eventlet")
        hubs = import_module("eventlet.hubs")
        greenlet = import_module("greenlet")

        def in_eventlet_loop() -> bool:
            return bool(hubs.get_hub().greenlet is greenlet.getcurrent())

        return Green(
            "eventlet", eventlet.Timeout, eventlet.spawn, in_eventlet_loop, spawn_from_signal=False
        )
    return None


def _safely(check: Callable[[], object]) -> bool:
    try:
        return bool(check())
    except Exception:
        return False
