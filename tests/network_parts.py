"""Real network parts for the delivery tests, on loopback addresses only.

* :func:`forward_proxy`: Debian's tinyproxy on 127.0.0.1, logging every request line
  (``POST http://127.0.0.2:.../push...`` or ``CONNECT 127.0.0.2:...``); ``refuse`` lists
  destinations it filters out, as a proxy on another machine cannot reach this host's
  loopback.
* :func:`private_ca`: a CA and a server certificate for 127.0.0.2, made with openssl.
* :func:`tls_wrapped`: a receiver's listening socket wrapped in TLS with that certificate.
* :func:`echo_backend`: a backend on any loopback address that keeps each request's
  target and headers and answers with a given status and body.
"""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from helpers import free_port

TINYPROXY = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


@dataclass
class ForwardProxy:
    """A running tinyproxy: its URL and what its log says it was asked."""

    url: str
    log: Path

    def requests(self) -> list[str]:
        """Each request line the proxy received: ``METHOD target``."""
        text = self.log.read_bytes().decode("utf-8", "replace")
        return re.findall(r"Request \(file descriptor \d+\): (\S+ \S+)", text)

    def refused(self) -> int:
        """How many requests its filter refused."""
        return (
            self.log.read_bytes().decode("utf-8", "replace").count("Proxying refused on filtered")
        )

    def text(self) -> str:
        """The whole log, to look for what must not be there."""
        return self.log.read_bytes().decode("utf-8", "replace")


@contextmanager
def forward_proxy(tmp: Path, refuse: tuple[str, ...] = ()) -> Iterator[ForwardProxy]:
    """tinyproxy on 127.0.0.1 (see the module docstring)."""
    port = free_port()
    log = tmp / "tinyproxy.log"
    conf = tmp / "tinyproxy.conf"
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Timeout 10",
        f'LogFile "{log}"',
        "LogLevel Connect",
        "MaxClients 50",
        "Allow 127.0.0.0/8",
    ]
    if refuse:
        rules = tmp / "tinyproxy.filter"
        rules.write_text("".join(f"^{re.escape(host)}$\n" for host in refuse))
        lines += [f'Filter "{rules}"', "FilterURLs Off", "FilterExtended On"]
    conf.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen(
        [TINYPROXY, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"tinyproxy did not start: {process.stderr!r}") from None
                time.sleep(0.05)
        yield ForwardProxy(f"http://127.0.0.1:{port}", log)
    finally:
        process.terminate()
        process.wait(10)


@dataclass
class PrivateCA:
    """A CA certificate and a server certificate (with key) it signed, as PEM files."""

    ca: Path
    cert: Path
    key: Path
    ca_dir: Path  # a directory holding the CA under its hash name (for SSL_CERT_DIR)


def private_ca(tmp: Path, host: str = "127.0.0.2") -> PrivateCA:
    """A CA made now, and a certificate for ``host`` (an IP SAN) signed by it."""

    def openssl(*args: str) -> str:
        done = subprocess.run(
            [OPENSSL, *args], cwd=tmp, capture_output=True, text=True, check=True, timeout=60
        )
        return done.stdout

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=pyrospan test CA",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        f"/CN={host}",
    )
    # What Python 3.13+ checks by default (VERIFY_X509_STRICT): a leaf names its issuer's
    # key and says what it is for, as certificates from a real private CA do.
    (tmp / "san.ext").write_text(
        f"subjectAltName=IP:{host}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    )
    ca_dir = tmp / "ca-dir"
    ca_dir.mkdir()
    digest = openssl("x509", "-hash", "-noout", "-in", "ca.pem").strip()
    shutil.copy(tmp / "ca.pem", ca_dir / f"{digest}.0")
    return PrivateCA(tmp / "ca.pem", tmp / "server.pem", tmp / "server.key", ca_dir)


def tls_wrapped(server: Any, ca: PrivateCA) -> None:
    """Wrap ``server``'s listening socket (a socketserver) in TLS, before it serves."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(ca.cert, ca.key)
    # The handshake happens on the handler's thread, not in accept(): a client that fails
    # it must not stop the server.
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )


@dataclass
class Echo:
    """What an echo backend received."""

    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    event: threading.Event = field(default_factory=threading.Event)


@contextmanager
def echo_backend(
    host: str = "127.0.0.1", status: int = 200, body: bytes = b"", ca: PrivateCA | None = None
) -> Iterator[tuple[str, Echo]]:
    """A backend on ``host`` answering every POST with ``status`` and ``body``."""
    echo = Echo()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            echo.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            echo.event.set()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a client that gave up on the TLS handshake

    server = Server((host, 0), Handler)
    if ca is not None:
        tls_wrapped(server, ca)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    scheme = "https" if ca is not None else "http"
    try:
        yield f"{scheme}://{host}:{server.server_address[1]}", echo
    finally:
        server.shutdown()
        server.server_close()
