"""Where the relay forwards a push, and how: the server URL as pyroscope-io reads it.

pyroscope-io, pushing directly, turns ``server_address`` into the request as follows, and
so does :class:`Upstream`:

* ``user:password@`` in the URL is sent as basic auth (percent-decoded), in place of any
  ``Authorization`` header;
* a path is a prefix: ``http://h/p?x=1`` receives ``POST /p/push.v1.PusherService/Push?x=1``;
* the proxy variables apply as they did to pyroscope-io's own client
  (:mod:`pyrospan_launch.common.proxies`): an http URL goes to the proxy in absolute
  form, an https URL through a ``CONNECT`` tunnel, so the proxy sees nothing else.

The variables are read when the upstream is made (pyroscope-io reads them when it is
configured).  Nothing is imported before the first push but what start-up allows
(docs/design.md, "Start-up and exit discipline").
"""

from __future__ import annotations

import os
from collections import namedtuple

from pyrospan_launch.common import proxies, trust

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from typing import NamedTuple

    class Answer(NamedTuple):
        """What the server answered: the status, and its short reason when it refused."""

        status: int
        reason: str
else:
    Answer = namedtuple("Answer", "status reason")

# The variables an upstream reads, kept when it is made.
_VARIABLES = (
    "REQUEST_METHOD",
    *(f"{name}_PROXY" for name in ("HTTP", "HTTPS", "ALL", "NO")),
    *(f"{name}_proxy" for name in ("http", "https", "all", "no")),
    *trust.ALL_VARIABLES,
)
# Bytes of a refusal's body read for its reason.
_REASON_BYTES = 2048


class ProxyNotUsable(OSError):
    """The proxy variable names a kind of proxy neither pyroscope-io nor the relay speaks."""


class Upstream:
    """The configured server: its URL taken apart once, its proxy and its TLS trust."""

    def __init__(self, url: str, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.url = url.rstrip("/")
        self.environ = {name: env[name] for name in _VARIABLES if name in env}
        self._parts: tuple[str, str, int, str, str, str] | None = None
        self._context: ssl.SSLContext | None = None
        self._proxy: tuple[proxies.Proxy | None] | None = None

    def _parse(self) -> tuple[str, str, int, str, str, str]:
        if self._parts is None:
            import base64
            from urllib.parse import unquote, urlsplit

            parts = urlsplit(self.url)
            scheme = parts.scheme.lower()
            authorization = ""
            if parts.username is not None:
                pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
                authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
            port = parts.port or (443 if scheme == "https" else 80)
            prefix = parts.path.rstrip("/")
            self._parts = (scheme, parts.hostname or "", port, prefix, parts.query, authorization)
        return self._parts

    @property
    def shown(self) -> str:
        """The server as it may be printed: scheme, host, port and path, no credentials."""
        scheme, host, port, prefix, _, _ = self._parse()
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{port}{prefix}"

    @property
    def proxy(self) -> proxies.Proxy | None:
        """The proxy pushes go through, by pyroscope-io's rules; None: direct."""
        if self._proxy is None:
            self._proxy = (proxies.profile_proxy(self.url, self.environ),)
        return self._proxy[0]

    def target(self, incoming: str) -> str:
        """The request target for a push that came to the relay as ``incoming``."""
        _, _, _, prefix, query, _ = self._parse()
        path, _, incoming_query = incoming.partition("?")
        joined = "&".join(part for part in (query, incoming_query) if part)
        return prefix + path + (f"?{joined}" if joined else "")

    def _tls(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = trust.relay_context(self.environ)
        return self._context

    def send(
        self, incoming: str, headers: list[tuple[str, str]], body: bytes, timeout: float
    ) -> Answer:
        """POST one push; the answer.  Network and TLS failures raise (OSError and kin).

        ``http.client``, not urllib: importing ``urllib.request`` (at exit, maybe) would
        load OpenTelemetry's urllib instrumentation in the middle of the app's shutdown.
        """
        import http.client

        scheme, host, port, _, _, authorization = self._parse()
        target = self.target(incoming)
        proxy = self.proxy
        if proxy is not None and proxy.scheme != "http":
            raise ProxyNotUsable(f"a {proxy.scheme} proxy is not supported")
        connection: http.client.HTTPConnection
        extra: list[tuple[str, str]] = []
        if scheme == "https":
            if proxy is None:
                connection = http.client.HTTPSConnection(
                    host, port, timeout=timeout, context=self._tls()
                )
            else:
                connection = http.client.HTTPSConnection(
                    proxy.host, proxy.port, timeout=timeout, context=self._tls()
                )
                tunnel = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else {}
                connection.set_tunnel(host, port, headers=tunnel)
        elif proxy is None:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        else:
            connection = http.client.HTTPConnection(proxy.host, proxy.port, timeout=timeout)
            shown_host = f"[{host}]" if ":" in host else host
            target = f"http://{shown_host}:{port}{target}"
            if proxy.authorization:
                extra.append(("Proxy-Authorization", proxy.authorization))
        if authorization:
            headers = [(n, v) for n, v in headers if n.lower() != "authorization"]
            extra.append(("Authorization", authorization))
        try:
            connection.putrequest("POST", target, skip_accept_encoding=True)
            for name, value in [*headers, *extra]:
                connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            status = int(response.status)
            if 200 <= status < 300:
                response.read()
                return Answer(status, "")
            return Answer(status, short_reason(response.read(_REASON_BYTES)))
        finally:
            connection.close()


def short_reason(body: bytes) -> str:
    """The server's reason in one short line: a JSON ``message``, else the body's first line."""
    text = body.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        import json

        try:
            message = json.loads(text).get("message")
        except (ValueError, AttributeError):
            message = None
        if isinstance(message, str):
            text = message
    line = text.splitlines()[0] if text else ""
    line = "".join(ch if ch.isprintable() else " " for ch in line).strip()
    return line[:160] + ("..." if len(line) > 160 else "")
