"""The relay's receiving side: a threading TCP server on the loopback interface.

``socketserver`` accepts the connections, one thread each, at most ``max_connections`` at
once; the handler it is given (:mod:`pyrospan_launch.agent.relay.handler`, on
``http.server``) reads and answers their requests.  That module, and with it
``http.server``, loads when span linking starts (:meth:`Relay.warm_up
<pyrospan_launch.agent.relay.server.Relay.warm_up>`) or with the first connection, never
with the profiler: the relay starts before the app and
``http.server`` costs milliseconds (docs/design.md, "Start-up and exit discipline").

``socketserver.TCPServer``, not ``http.server.HTTPServer``: the latter looks up the
host's fully qualified name when it binds, a DNS query at the app's start.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import sys

from pyrospan_launch.agent import native
from pyrospan_launch.common import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    from pyrospan_launch.agent.relay.stats import Stats

    class Receiver(Protocol):
        """What the handler hands requests to (the Relay)."""

        stats: Stats

        def accept(self, method: str, target: str, headers: Any, body: Any) -> int: ...


# Seconds between the serving thread's checks that the relay was closed; closing also
# wakes it at once (the listening socket is shut down).
_POLL_INTERVAL = 5.0


class _Stopped(Exception):
    """Raised on the serving thread once the relay is closed, to leave ``serve_forever``."""


class Listener(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Bound to ``(host, any free port)`` when made; :meth:`serve` starts accepting."""

    daemon_threads = True
    block_on_close = False  # closing never waits for a client
    request_queue_size = 16  # more connections than served at once wait here

    def __init__(
        self,
        host: str,
        relay: Receiver,
        handler: Callable[[Any, Any, Listener], Any],
        *,
        max_connections: int,
        read_timeout: float,
        idle_timeout: float,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.relay = relay  # what the handler hands requests to
        self.read_timeout = read_timeout
        self.idle_timeout = idle_timeout
        # Real threads, locks and sockets even in a monkey-patched app (agent/native.py).
        self._slots = native.BoundedSemaphore(max_connections)
        self._stopping = False
        super().__init__((host, 0), handler, bind_and_activate=False)
        self.socket.close()
        self.socket = native.socket(self.address_family, self.socket_type)
        try:
            self.server_bind()
            self.server_activate()
        except BaseException:
            self.server_close()
            raise

    def serve(self) -> None:
        """Accept connections on a daemon thread of their own."""
        native.Thread(target=self._serve, name="pyrospan-relay", daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(_Stopped):
            self.serve_forever(poll_interval=_POLL_INTERVAL)

    def stop(self) -> None:
        """Stop accepting and close the listening socket, without waiting for any thread."""
        self._stopping = True
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)  # wakes the serving thread
        self.server_close()

    def close_inherited(self) -> None:
        """In a forked child: close the parent's listening socket, which is the parent's to use.

        Only closed: shutting it down would stop the parent's relay too.  The thread that
        served it does not exist in the child; were it there, it would stop (a closed
        socket is always "ready", and serving it again and again would spin).
        """
        self._stopping = True
        self.server_close()

    def service_actions(self) -> None:
        if self._stopping:
            raise _Stopped

    def process_request(self, request: Any, client_address: Any) -> None:
        slots = self._slots
        if not slots.acquire(timeout=self.read_timeout):
            self.shutdown_request(request)  # every slot held by clients that do not send
            return
        try:
            native.Thread(
                target=self._serve_connection,
                args=(request, client_address, slots),
                name="pyrospan-relay-conn",
                daemon=True,
            ).start()
        except RuntimeError:
            # No new thread: Python 3.12+ starts none once it is finalizing, which is when
            # the exit flush of a program that ends before its first upload connects (or
            # the process has no room for one).  Served on this thread instead: at exit
            # it is the one push left, and a late push beats a lost one.
            self._serve_connection(request, client_address, slots)
        except BaseException:
            slots.release()  # socketserver closes the connection and calls handle_error
            raise

    def _serve_connection(self, request: Any, client_address: Any, slots: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that stalled, left or sent nonsense: never the app's problem, and
        # nothing of what it sent is repeated.
        log.debug(f"relay: connection ended: {type(sys.exc_info()[1]).__name__}")
