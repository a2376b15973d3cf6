"""Real threads, locks and sockets for the agent's own work, whatever the app monkey-patches.

gevent's ``monkey.patch_all()`` (``gunicorn -k gevent``, a gevent app's first line) and
eventlet's ``monkey_patch()`` replace, in place, what the ``threading``, ``_thread`` and
``socket`` modules hand out: a thread started afterwards is a greenlet, a lock or a
socket a cooperative one.  The relay, its forwarder and the exit helpers run while the
app burns CPU or while it ends, on threads of their own: as greenlets they would wait
for the app to yield, and a relay thread started before the patching that then makes a
greenlet for each connection serves none of them.

The bootstrap imports this module before any app code, so it sees the modules as they
were before any patching.  It keeps the functions it needs from then, and rebinds
``threading``'s ``Thread``, ``Event``, ``Condition`` and semaphores, and ``socket``'s
``socket`` and ``create_connection``, to a copy of their module's names taken now: the
same code, the interpreter's own primitives underneath.
"""

from __future__ import annotations

import _thread
import socket as _socket_module
import threading as _threading_module
import types

from pyrospan_launch.agent.main_signals import blocked_for_new_threads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_start_new_thread = _thread.start_new_thread
allocate_lock = _thread.allocate_lock
get_native_id = _thread.get_native_id


def _rebound(cls: type, names: dict[str, Any]) -> Any:
    """A subclass of ``cls`` whose functions (its bases' too) read globals from ``names``."""
    body: dict[str, Any] = {}
    for klass in reversed(cls.__mro__[:-1]):  # object's are C code: nothing to rebind
        for key, value in vars(klass).items():
            if isinstance(value, types.FunctionType):
                body[key] = _function(value, names)
    if hasattr(cls, "__slots__"):
        body["__slots__"] = ()
    body["__module__"] = __name__
    return type(cls.__name__, (cls,), body)


def _function(function: types.FunctionType, names: dict[str, Any]) -> Any:
    copy = types.FunctionType(
        function.__code__, names, function.__name__, function.__defaults__, function.__closure__
    )
    copy.__kwdefaults__ = function.__kwdefaults__
    copy.__qualname__ = function.__qualname__
    return copy


# threading's names as they are now; shared objects (the registry of running threads, its
# lock) are the same objects, so threads started here are listed by threading.enumerate().
_threading_names = dict(vars(_threading_module))
Condition = _rebound(_threading_module.Condition, _threading_names)
_threading_names["Condition"] = Condition
Event = _rebound(_threading_module.Event, _threading_names)
_threading_names["Event"] = Event
Semaphore = _rebound(_threading_module.Semaphore, _threading_names)
_threading_names["Semaphore"] = Semaphore
BoundedSemaphore = _rebound(_threading_module.BoundedSemaphore, _threading_names)
_threading_names["BoundedSemaphore"] = BoundedSemaphore
_Thread = _rebound(_threading_module.Thread, _threading_names)


class Thread(_Thread):  # type: ignore[misc, valid-type]
    """A real thread of ours, started with the app's signals blocked (main_signals)."""

    def start(self) -> None:
        with blocked_for_new_threads():
            super().start()


_threading_names["Thread"] = Thread


def start_new_thread(function: Any, args: tuple[Any, ...]) -> int:
    """``_thread.start_new_thread``, the thread started with the app's signals blocked."""
    with blocked_for_new_threads():
        return _start_new_thread(function, args)


_socket_names = dict(vars(_socket_module))
socket = _rebound(_socket_module.socket, _socket_names)
_socket_names["socket"] = socket
create_connection = _function(_socket_module.create_connection, _socket_names)  # type: ignore[arg-type]
