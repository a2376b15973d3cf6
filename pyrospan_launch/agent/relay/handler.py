"""The relay's HTTP side: one connection's requests, parsed and answered by ``http.server``.

Each request goes to :meth:`Relay.accept <pyrospan_launch.agent.relay.server.Relay.accept>`,
which checks, reads and queues it and says the status; every answer is empty.  The
connection stays open between pushes (pyroscope-io keeps it alive) unless the request
was refused, whose unread body would be taken for the next request.  Nothing is logged
per request, and no answer repeats what the client sent.

Loaded off the start-up path (see :mod:`pyrospan_launch.agent.relay.listener`).
"""

from __future__ import annotations

import http.server
import time

from pyrospan_launch.common import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from pyrospan_launch.agent.relay.listener import Listener


class PushHandler(http.server.BaseHTTPRequestHandler):
    """Reads requests with the listener's timeouts and answers them with the relay's status."""

    protocol_version = "HTTP/1.1"  # keep-alive
    server_version = "pyrospan-relay"
    server: Listener

    def handle_one_request(self) -> None:
        # A kept-alive connection may wait this long for its next request ...
        self.connection.settimeout(self.server.idle_timeout)
        super().handle_one_request()

    def parse_request(self) -> bool:
        # ... but once its request line came, the rest must follow within the read timeout.
        self.connection.settimeout(self.server.read_timeout)
        return super().parse_request()

    def do_POST(self) -> None:
        relay = self.server.relay
        started = time.thread_time()
        status = relay.accept(self.command, self.path, self.headers, self.rfile)
        relay.stats.cpu_seconds += time.thread_time() - started
        self._answer(status)

    def __getattr__(self, name: str) -> Callable[[], None]:
        # Every method reaches the relay, which refuses all but POST (404 or 405), where
        # http.server would answer 501.
        if name.startswith("do_"):
            return self.do_POST
        raise AttributeError(name)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A request http.server could not parse: counted, answered empty, connection closed."""
        self.server.relay.stats.rejected += 1
        self.close_connection = True
        if self.request_version == self.default_request_version:
            # A request line that named no version: answered all the same, not silently
            # closed as an HTTP/0.9 request would be.
            self.request_version = self.protocol_version
        self._answer(code)

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/proto")
        self.send_header("Content-Length", "0")
        if status != 200 or self.close_connection:
            self.send_header("Connection", "close")  # and http.server closes it
        self.end_headers()

    def version_string(self) -> str:
        return self.server_version

    def log_error(self, format: str, *args: object) -> None:
        # Only a timeout gets here (send_error is answered above): a stalled or idle client.
        log.debug("relay: connection ended: TimeoutError")

    def log_message(self, format: str, *args: object) -> None:
        pass  # nothing per request
