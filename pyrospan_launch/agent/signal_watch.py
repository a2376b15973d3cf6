"""Wake the main thread when pyrospan's SIGTERM handler is due and Python leaves it asleep.

Without pyrospan-run a program that does not handle SIGTERM dies of it at once: the
kernel's default action.  pyrospan-run puts a Python handler there (the last data is sent,
then the process dies of the signal all the same), and Python runs a handler only on the
main thread, between bytecodes.  On Python 3.14 a signal that arrives while the main
thread finishes some calls into C (measured: ``print(..., flush=True)``) is left pending
when the next call blocks: ``time.sleep(60)`` sleeps its 60 s, ``signal.pause()`` forever
(measured with no pyrospan at all: a quarter to half of the runs of a program that
sleeps right after printing; none on 3.10 to 3.13).  ``docker stop`` then waits its
10 s and kills, and the last window is lost.

The C-level handler does run at once, on whichever thread the signal reached, and it
writes the signal's number to the file descriptor given to ``signal.set_wakeup_fd``.  So
a :class:`SignalWatch` sets one (only if nobody has: asyncio's or a library's stays
theirs) and a helper thread reads it.  When SIGTERM comes and pyrospan's handler is still
the one installed and has not started within :data:`GRACE` seconds, the helper sends
SIGTERM once more, to the main thread itself (``signal.pthread_kill``): its blocking call
is interrupted, Python checks for signals and runs the handler.  An app's own handler is
never nudged: whether it already ran is unknowable from outside, and running it twice
would be worse than late.
"""

from __future__ import annotations

import _thread
import contextlib
import signal
import socket
import sys
import time
from collections.abc import Callable

from pyrospan_launch.agent import bounded
from pyrospan_launch.agent.main_signals import blocked_for_new_threads
from pyrospan_launch.common import log

# Where the watch is needed: Python 3.14 on (see the module docstring).
NEEDED = sys.version_info >= (3, 14)
# How long the main thread gets to start the handler by itself before it is woken.
GRACE = 0.05
# Wake-ups sent at most in a process, GRACE apart, while the handler has not started (a
# main thread busy in C code for long cannot be woken; it runs the handler when it returns).
NUDGES = 20


class SignalWatch:
    """A helper thread that wakes the main thread for one signal (see the module docstring).

    ``due()`` says whether the handler is installed and has not started yet.
    """

    def __init__(self, signum: int, due: Callable[[], bool]) -> None:
        self.signum = signum
        self._due = due
        self._sockets: tuple[socket.socket, socket.socket] | None = None
        self._main_ident = 0
        self._paused = False
        self.nudged = 0

    @property
    def watching(self) -> bool:
        """True while this process's wakeup file descriptor is the watch's."""
        return self._sockets is not None

    def start(self) -> bool:
        """Set the wakeup file descriptor and start the helper; False if someone set one."""
        reader, writer = socket.socketpair()
        writer.setblocking(False)  # required by set_wakeup_fd: a full buffer drops, never blocks
        try:
            previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        except ValueError:  # not the main thread
            reader.close()
            writer.close()
            return False
        if previous != -1:
            signal.set_wakeup_fd(previous)  # an event loop's or a library's: theirs
            reader.close()
            writer.close()
            log.debug("signals: a wakeup file descriptor is already set; SIGTERM not watched")
            return False
        self._sockets = (reader, writer)
        self._main_ident = _thread.get_ident()
        try:
            # It reads the wakeup descriptor: signals themselves go to the app's threads.
            with blocked_for_new_threads():
                _thread.start_new_thread(self._watch, (reader,))
        except RuntimeError as exc:
            self.stop()
            log.debug(f"signals: no watch thread: {exc}")
            return False
        return True

    def stop(self, *, forked: bool = False) -> None:
        """Give the wakeup file descriptor back (if still ours) and end the helper thread.

        ``forked``: in a forked child, whose sockets are the parent's too and which has no
        helper thread, they are only closed (a shutdown would end the parent's watch).
        """
        if self._sockets is None:
            return
        reader, writer = self._sockets
        self._sockets = None
        try:
            current = signal.set_wakeup_fd(-1)
            if current != writer.fileno():
                signal.set_wakeup_fd(current)  # set by the app since: leave it
        except ValueError:
            pass  # not the main thread: the descriptor stays, its socket is closed below
        if not forked:
            with contextlib.suppress(OSError):
                reader.shutdown(socket.SHUT_RDWR)  # wakes the helper's recv: it returns
        reader.close()
        writer.close()

    def pause(self) -> None:
        """Before a fork: no wakeup descriptor while the child shares it.

        A signal the child gets before its own watch starts would otherwise reach the
        parent's helper, which would wake the parent's handler: the parent would end.
        Only from the main thread (``set_wakeup_fd`` works nowhere else); a fork from
        another thread keeps that short window.
        """
        if self._sockets is None:
            return
        try:
            current = signal.set_wakeup_fd(-1)
        except ValueError:
            return
        if current == self._sockets[1].fileno():
            self._paused = True
        else:
            signal.set_wakeup_fd(current)  # the app's: leave it

    def resume(self) -> None:
        """After a fork, in the parent: the wakeup descriptor back."""
        if self._paused and self._sockets is not None:
            self._paused = False
            signal.set_wakeup_fd(self._sockets[1].fileno(), warn_on_full_buffer=False)

    def restart_in_child(self) -> None:
        """In a forked child: a watch of its own, never the parent's socket or thread."""
        self._paused = False
        if self._sockets is not None:
            self.stop(forked=True)
            self.start()

    def _watch(self, reader: socket.socket) -> None:
        bounded.count_as_helper()
        while True:
            try:
                received = reader.recv(64)
            except OSError:
                return  # closed: stopped, or this is a forked child's copy
            if not received:
                return
            if self.signum in received:
                self._wake_main_thread()

    def _wake_main_thread(self) -> None:
        # Each wake-up is a signal, whose byte comes back here: the count bounds them all.
        while self.nudged < NUDGES:
            time.sleep(GRACE)
            if not self._due():
                return
            try:
                signal.pthread_kill(self._main_ident, self.signum)
            except (OSError, ValueError):
                return  # the main thread is gone: the process is ending
            self.nudged += 1
