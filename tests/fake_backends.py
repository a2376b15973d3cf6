"""Broken backends on 127.0.0.1 for the hardening tests: what a real outage looks like on the wire.

Each kind is a real socket the exporters talk to: ``refused`` (nothing listens),
``blackhole`` (the kernel accepts the connection, nobody ever reads or answers), ``slow``
(answers 200 after :data:`SLOW_SECONDS`), ``401`` and ``500`` (a well-formed HTTP error
whose reason phrase and body echo the request's credentials back, as a careless proxy
might), and ``garbage`` (bytes that are not HTTP, then the connection closes).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KINDS = ("refused", "blackhole", "slow", "401", "500", "garbage")
SLOW_SECONDS = 2.0


class _Handler(BaseHTTPRequestHandler):
    kind = "500"
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.requests += 1  # type: ignore[attr-defined]
        if self.kind == "garbage":
            self.wfile.write(b"\x00\xff\xfegarbage that is not HTTP\r\n\r\n")
            self.close_connection = True
            return
        if self.kind == "slow":
            time.sleep(SLOW_SECONDS)
            self._answer(200, "OK", b"")
            return
        # Echo whatever credentials came in, in the reason phrase and the body.
        echoed = " ".join(
            f"{name}={value}"
            for name, value in self.headers.items()
            if name.lower() not in ("content-length", "content-type", "host")
        )
        status = int(self.kind)
        self._answer(status, f"Denied {echoed}"[:200], echoed.encode())

    def _answer(self, status: int, reason: str, body: bytes) -> None:
        self.send_response(status, reason.replace("\r", " ").replace("\n", " "))
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the test output to what the app and pyrospan-run print


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    requests = 0

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that left before the slow answer: nothing to report


@contextmanager
def backend(kind: str) -> Iterator[str]:
    """A broken backend of ``kind`` (see :data:`KINDS`); yields its base URL."""
    if kind == "refused":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        yield f"http://127.0.0.1:{port}"  # closed again: connections are refused
        return
    if kind == "blackhole":
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(128)  # handshakes complete in the kernel; nothing ever reads
            yield f"http://127.0.0.1:{listener.getsockname()[1]}"
        return
    handler = type(f"{kind}Handler", (_Handler,), {"kind": kind})
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Recorded:
    """What a recording backend received: each request's target, headers and body."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.event = threading.Event()  # set at every request

    def lowercase_headers(self) -> list[tuple[str, dict[str, str], bytes]]:
        """The requests, with header names lowercased (HTTP names are case-insensitive)."""
        return [
            (target, {name.lower(): value for name, value in headers.items()}, body)
            for target, headers, body in self.requests
        ]


@contextmanager
def recording_backend(prefix: str = "") -> Iterator[tuple[str, Recorded]]:
    """A healthy backend that keeps every POST and answers 200: ``(base URL + prefix, record)``."""
    recorded = Recorded()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            recorded.requests.append((self.path, dict(self.headers.items()), body))
            recorded.event.set()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{prefix}", recorded
    finally:
        server.shutdown()
        server.server_close()
