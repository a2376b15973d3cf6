"""What became of the relay's pushes, said the way span export failures are said.

Each failed push is a *cause* in words, with the server (no credentials) and the
variable to check: connection refused, no answer in time, TLS, the proxy, 401/403, any
other 4xx with the server's short reason, 5xx.  :class:`Deliveries` says the first of
each cause at once at the default level, later ones at most once per interval
(:class:`~pyrospan_launch.agent.problem_lines.ProblemLines`), and :meth:`summary` gives
the one line said at exit when pushes were lost.  Loaded with the first failure only.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from pyrospan_launch.agent.problem_lines import ProblemLines
from pyrospan_launch.agent.relay.upstream import Answer, ProxyNotUsable, Upstream

SIGNAL = "profiles"
AUTH_VARIABLES = (
    "PYROSCOPE_BASIC_AUTH_USER/PYROSCOPE_BASIC_AUTH_PASSWORD (or user:password in "
    "PYROSCOPE_SERVER_ADDRESS), PYROSCOPE_TENANT_ID and PYROSCOPE_HTTP_HEADERS"
)
TLS_VARIABLES = "SSL_CERT_FILE, SSL_CERT_DIR or OTEL_EXPORTER_OTLP_CERTIFICATE"
# What a forward proxy answers when it will not or cannot pass a request on.
_PROXY_STATUSES = (403, 407, 502, 503, 504)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _network_cause(error: BaseException) -> str:
    """A failure to reach the server, in words; never the exception's own text beyond that."""
    import socket
    import ssl

    if isinstance(error, ssl.SSLCertVerificationError):
        why = getattr(error, "verify_message", None) or "certificate verify failed"
        return f"TLS: the certificate is not trusted ({why})"
    if isinstance(error, ssl.SSLError):
        return f"TLS handshake failed ({error.reason or type(error).__name__})"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, (TimeoutError, socket.timeout)):
        return "no answer in time"
    if isinstance(error, socket.gaierror):
        return "host name not found"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    text = str(error)
    if text.startswith("Tunnel connection failed"):
        # http.client's CONNECT refused by the proxy: "Tunnel connection failed: 403 Forbidden"
        return f"the proxy refused the tunnel ({text.partition(': ')[2][:60]})"
    import http.client

    if isinstance(error, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(error, http.client.BadStatusLine):
        return "the answer is not HTTP"
    return type(error).__name__


def describe(upstream: Upstream, answer: Answer | None, error: BaseException | None) -> str:
    """The cause of one failed push, with where it went and the variable to check."""
    proxy = upstream.proxy
    via = f" through the proxy {proxy.shown}" if proxy is not None else ""
    where = f"{upstream.shown}{via}"
    if error is not None:
        if isinstance(error, ProxyNotUsable):
            assert proxy is not None
            return (
                f"{error} (pyroscope-io cannot use it either) for {upstream.shown}; "
                f"check {proxy.variable} and NO_PROXY"
            )
        cause = _network_cause(error)
        if cause.startswith("TLS"):
            check = TLS_VARIABLES
        elif proxy is not None:
            check = f"{proxy.variable} and NO_PROXY"
        else:
            check = "PYROSCOPE_SERVER_ADDRESS"
        return f"{cause} at {where}; check {check}"
    assert answer is not None
    status = f"HTTP {answer.status} {_phrase(answer.status)}".rstrip()
    if proxy is not None and upstream.url.startswith("http:") and answer.status in _PROXY_STATUSES:
        # Over plain HTTP the proxy answers in the server's place: either may have said it.
        return (
            f"{status} from {where} (the server or the proxy); check {proxy.variable} and "
            f"NO_PROXY, then {AUTH_VARIABLES if answer.status < 500 else 'the server'}"
        )
    if answer.status in (401, 403):
        return f"{status} from {where}; check {AUTH_VARIABLES}"
    if answer.status == 407:
        check = proxy.variable if proxy is not None else "the proxy variables"
        return f"{status} from {where}; check the credentials in {check}"
    if 400 <= answer.status < 500:
        reason = f": {answer.reason}" if answer.reason else ""
        check = "PYROSCOPE_SERVER_ADDRESS" if answer.status == 404 else "the server's limits"
        return f"{status}{reason} from {where}; check {check}"
    return f"{status} from {where}; the server failed, pushes are not retried"


class Deliveries:
    """Failed and dropped pushes, said as they happen and summed up at exit."""

    def __init__(
        self,
        interval: float,
        secrets: list[str],
        *,
        clock: Callable[[], float] | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        kwargs = {} if say is None else {"say": say}
        self.lines = ProblemLines(interval, secrets, clock=clock, **kwargs)
        self.last_cause = ""

    def failed(
        self, upstream: Upstream, answer: Answer | None = None, error: BaseException | None = None
    ) -> str:
        """One push failed; its cause (also said, when its turn came)."""
        try:
            cause = describe(upstream, answer, error)
        except Exception as exc:  # a bug here must not stop the forwarder
            cause = f"{type(error or exc).__name__} at {upstream.shown}"
        self.last_cause = cause
        self.lines.occurred(SIGNAL, cause)
        return cause

    def dropped(self, upstream: Upstream) -> None:
        """The oldest waiting push was dropped to make room: the server is too slow."""
        self.lines.occurred(
            SIGNAL,
            f"{upstream.shown} is not keeping up, so the oldest waiting push was dropped",
        )

    def summary(self, failed: int, dropped: int, left: int, forwarded: int) -> str | None:
        """The exit line when any push was lost, else None."""
        lost = failed + dropped + left
        if not lost:
            return None
        parts = [
            f"{n} {what}"
            for n, what in (
                (failed, "failed"),
                (dropped, "dropped"),
                (left, "still waiting at exit"),
            )
            if n
        ]
        last = f"; last cause: {self.last_cause}" if self.last_cause else ""
        line = (
            f"profiles: {lost} of {lost + forwarded} pushes were not delivered this run "
            f"({', '.join(parts)}){last}"
        )
        if self.lines.secrets or "@" in line:
            from pyrospan_launch.common import redact

            line = redact.scrub(line, self.lines.secrets)
        return line
