"""The relay: a loopback HTTP server that pyroscope-io pushes to, forwarding to the real server.

pyroscope-io is pointed at ``http://127.0.0.1:<port>`` with one extra HTTP header, this
process's random token.  Each push is received (:mod:`~pyrospan_launch.agent.relay.listener`,
:mod:`~pyrospan_launch.agent.relay.handler`), checked here (method, path, token, size), its
pprof profiles rewritten (:mod:`pyrospan_launch.agent.relay.rewrite`), and queued; a
forwarder thread (:mod:`~pyrospan_launch.agent.relay.forwarder`) sends it on to the
configured server with the request's own path, query string and headers (basic auth,
``X-Scope-OrgID``, the user's headers), less the token.  The push is answered at once, so
pyroscope-io never waits for the backend.

A backend that is down or never answers costs no memory: the queue holds at most
:data:`MAX_QUEUED` pushes, the oldest is dropped (and counted) to make room.  Nothing the
relay says names a header, a credential or an upstream answer's text.
"""

from __future__ import annotations

import contextlib
import os

from pyrospan_launch.agent.relay.forwarder import Forwarder, Push
from pyrospan_launch.agent.relay.listener import Listener
from pyrospan_launch.agent.relay.stats import Stats
from pyrospan_launch.agent.relay.upstream import Upstream
from pyrospan_launch.common import log

# Nothing costly at start-up: http.server, http.client and protobuf load when linking
# starts or with the first push (the relay starts with the profiler, before the app), and
# typing only for type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections import deque
    from typing import Any

__all__ = ["PUSH_PATH", "TOKEN_HEADER", "Relay", "Stats", "forwarded_headers"]

TOKEN_HEADER = "X-Pyrospan-Relay"
PUSH_PATH = "/push.v1.PusherService/Push"

# A push larger than this is refused: pyroscope-io's pushes of a 10 s window of a busy
# service are well under 1 MiB.
MAX_BODY = 16 * 1024 * 1024
# What a push may decompress to while it is rewritten.
MAX_DECOMPRESSED = 64 * 1024 * 1024
# Seconds a client may take to send its request (a stalled local client holds nothing).
READ_TIMEOUT = 5.0
# Seconds a kept-alive connection may wait for its next request: longer than the default
# upload interval (10 s), so pyroscope-io's connection is not closed under it between
# pushes (a push sent just as the relay closes the connection could be lost).
IDLE_TIMEOUT = 30.0
# Seconds one forward may take (pyroscope-io's own HTTP timeout is 10 s).
FORWARD_TIMEOUT = 10.0
# Pushes waiting for the backend at most; each is one upload window.
MAX_QUEUED = 8
# Connections served at once; more wait in the listen backlog.
MAX_CONNECTIONS = 8

# Headers that belong to one hop, not to the push.
_HOP_HEADERS = frozenset(
    ("host", "content-length", "connection", "keep-alive", "transfer-encoding", "te", "upgrade")
)


class Relay:
    """One process's relay; :meth:`start` binds it, :attr:`address` is what pyroscope-io gets."""

    def __init__(
        self,
        upstream: str,
        *,
        host: str = "127.0.0.1",
        max_body: int = MAX_BODY,
        max_queued: int = MAX_QUEUED,
        forward_timeout: float = FORWARD_TIMEOUT,
    ) -> None:
        self._upstream = Upstream(upstream)
        self.host = host
        self.max_body = max_body
        self.forward_timeout = forward_timeout
        self.token = _new_token()
        # Token -> the server its pushes go to (see the upstream setter).
        self._routes: dict[str, Upstream] = {self.token: self._upstream}
        self.stats = Stats()
        self._max_queued = max_queued
        self._forwarder = self._new_forwarder()
        self._listener: Listener | None = None
        self._closed = False
        self._label_changes_said: set[str] = set()  # what the rewrite changed, said once
        # False until this process made a marker frame: until then pushes pass unparsed.
        self.markers_possible = False
        # True when the sampler labels no sample with its pid (the Stack sampler): the
        # relay adds the process's own to every sample (rewrite.add_pid).
        self.label_pid = False

    def warm_up(self) -> None:
        """Say marker frames may come, and load what rewriting them needs, now.

        Called when span linking starts, inside OpenTelemetry's own start (most of what it
        loads, protobuf above all, the OTLP exporter has loaded already).  Not later, in
        the exit flush: module code run while the interpreter finalizes (namedtuple,
        dataclasses) makes an uncaught KeyboardInterrupt exit with status 1 instead of
        dying of SIGINT.  Not on a thread of its own: a fork while it imports would leave
        the child a module lock that no thread of the child will ever release.
        """
        if self.markers_possible:
            return
        self.markers_possible = True
        _preload(rewrite=True)

    def load_forwarding(self) -> None:
        """Load what receiving and forwarding pushes needs, now; never rewrite them.

        For a relay that passes pushes on as they came (span labels from thread tags),
        called at the same point as :meth:`warm_up`, for the same reasons.
        """
        _preload(rewrite=False)

    # -- life --------------------------------------------------------------------------
    def start(self) -> None:
        """Bind to the loopback interface and start the accepting and forwarding threads."""
        self._listener = Listener(
            self.host,
            self,
            _push_handler,
            max_connections=MAX_CONNECTIONS,
            read_timeout=READ_TIMEOUT,
            idle_timeout=IDLE_TIMEOUT,
        )
        self._closed = False
        self._listener.serve()
        self._forwarder.start()
        log.debug(f"relay listening on {self.address}")

    @property
    def address(self) -> str:
        """``http://127.0.0.1:<port>``: where pyroscope-io pushes."""
        assert self._listener is not None, "relay not started"
        host, port = self._listener.server_address[:2]
        shown = f"[{host!s}]" if ":" in str(host) else str(host)
        return f"http://{shown}:{port}"

    @property
    def upstream(self) -> str:
        """The server pushes are forwarded to, as configured (credentials included)."""
        return self._upstream.url

    @upstream.setter
    def upstream(self, url: str) -> None:
        # The proxy and TLS variables are read now, as pyroscope-io reads them when the app
        # configures it again.
        self._upstream = Upstream(url)
        # A new token for the new server: a push the old profiler sends later (its last
        # window, which a sampler may send after shutdown() returned) still carries the
        # old token, and goes to the old server.
        self.token = _new_token()
        self._routes[self.token] = self._upstream

    @property
    def upstream_shown(self) -> str:
        """The server as it may be printed (no credentials)."""
        return self._upstream.shown

    def summary(self) -> str | None:
        """The exit line when pushes were lost, else None."""
        return self._forwarder.summary()

    @property
    def running(self) -> bool:
        """True while the relay serves."""
        return self._listener is not None and not self._closed

    @property
    def _queue(self) -> deque[Push]:
        """The pushes waiting for the backend (tests look at it)."""
        return self._forwarder.queue

    def restart_in_child(self) -> None:
        """In a forked child: a relay of its own, with none of the parent's pushes or threads."""
        old = self._listener
        if old is not None:
            with contextlib.suppress(OSError):
                old.close_inherited()
        # The parent's forwarder is left as it is (its lock may be held by the parent's
        # thread): only told to stop, should its thread exist in this process.
        self._forwarder.stopped = True
        self.token = _new_token()
        self._routes = {self.token: self._upstream}
        self.stats = Stats()
        self._forwarder = self._new_forwarder()
        self._listener = None
        self.start()

    def close(self) -> None:
        """Stop accepting pushes (queued ones are left to :meth:`drain`)."""
        self._closed = True
        if self._listener is not None:
            self._listener.stop()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued push was forwarded; False if ``timeout`` passed first."""
        return self._forwarder.drain(timeout)

    def _new_forwarder(self) -> Forwarder:
        return Forwarder(self.stats, max_queued=self._max_queued, timeout=self.forward_timeout)

    # -- receiving ---------------------------------------------------------------------
    def accept(self, method: str, target: str, headers: Any, body: Any) -> int:
        """Check, read, rewrite and queue one request; the HTTP status to answer.

        ``headers`` is the request's ``http.client.HTTPMessage``, ``body`` the stream its
        body is read from.
        """
        import hmac

        path = target.split("?", 1)[0]
        if self._closed or path != PUSH_PATH:
            self.stats.rejected += 1
            return 404
        if method != "POST":
            self.stats.rejected += 1
            return 405
        token = (headers.get(TOKEN_HEADER) or "").encode()
        upstream = next(
            (
                route
                for known, route in self._routes.items()
                if hmac.compare_digest(token, known.encode())
            ),
            None,
        )
        if upstream is None:
            self.stats.rejected += 1
            return 403
        length_text = headers.get("Content-Length")
        if length_text is None or not length_text.isdigit() or headers.get("Transfer-Encoding"):
            self.stats.rejected += 1
            return 411
        length = int(length_text)
        if length > self.max_body:
            self.stats.rejected += 1
            return 413
        data: bytes = body.read(length)
        if len(data) != length:
            self.stats.rejected += 1
            return 400
        self.stats.received += 1
        if self.markers_possible or self.label_pid:
            from pyrospan_launch.agent.relay.rewrite import rewrite_push
            from pyrospan_launch.agent.spans.openings import OPENINGS
            from pyrospan_launch.wire.errors import DecodeError

            changes: set[str] = set()
            try:
                pid = str(os.getpid()) if self.label_pid else None
                data = rewrite_push(
                    data, headers.get("Content-Encoding"), MAX_DECOMPRESSED, changes, pid
                )
                self._say_label_changes(changes)
            except DecodeError as exc:
                # Forwarding it as it came could send marker frames out: drop it.
                self.stats.failed += 1
                log.debug(f"relay: push dropped, it does not decode: {exc}")
                return 400
            finally:
                # Spans that ended some pushes ago have had their samples rewritten.
                OPENINGS.after_push()
        # The server of the push's token: a push of the profiler the app's own configure()
        # replaced goes where it was meant to, whenever it arrives.
        self._forwarder.put(Push(upstream, target, forwarded_headers(headers), data))
        return 200

    def _say_label_changes(self, changes: set[str]) -> None:
        """One warning for each kind of label the rewrite had to change, the first time."""
        for change in sorted(changes - self._label_changes_said):
            self._label_changes_said.add(change)
            log.warning(f"profiles: {change} (Pyroscope rejects a profile that breaks a limit)")


def _preload(rewrite: bool) -> None:
    try:
        import hmac  # noqa: F401
        import http.client  # noqa: F401
        import ssl  # noqa: F401

        from pyrospan_launch.agent.relay.handler import PushHandler  # noqa: F401

        if rewrite:
            from pyrospan_launch.agent.relay.rewrite import rewrite_push  # noqa: F401
    except Exception as exc:
        log.debug(f"relay: could not load its rewrite: {type(exc).__name__}: {exc}")


def _push_handler(request: Any, client_address: Any, server: Listener) -> Any:
    """The HTTP handler of one connection; http.server loads with the first, if not before."""
    from pyrospan_launch.agent.relay.handler import PushHandler

    return PushHandler(request, client_address, server)


def _new_token() -> str:
    return os.urandom(16).hex()


def forwarded_headers(headers: Any) -> list[tuple[str, str]]:
    """The request headers a relay passes on (for tests): all but hop headers and the token."""
    return [
        (name, value)
        for name, value in headers.items()
        if name.lower() not in _HOP_HEADERS and name.lower() != TOKEN_HEADER.lower()
    ]
