"""The in-process relay that turns marker frames into span labels before profiles leave.

pyroscope-io pushes to :class:`~pyrospan_launch.relay.server.Relay` on the loopback
interface; the relay rewrites each push (:mod:`pyrospan_launch.relay.rewrite`) and
forwards it to the configured server.  :func:`start` starts one, or says in one line why
it could not (span labels then fall back to thread tags).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pyrospan_launch import log
from pyrospan_launch.relay.server import TOKEN_HEADER, Relay

__all__ = ["TOKEN_HEADER", "Relay", "start"]

# Where the relay binds; tests set another address to make it fail to start.
HOST_VARIABLE = "_PYROSPAN_RELAY_HOST"


def _host(environ: Mapping[str, str]) -> str:
    host = environ.get(HOST_VARIABLE) or "127.0.0.1"
    if host != "127.0.0.1":
        import ipaddress

        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"{host} is not a loopback address")
    return host


def why_not(environ: Mapping[str, str] | None = None) -> str | None:
    """None when a relay could start here now, else why not (for ``--info``)."""
    import socket

    try:
        host = _host(os.environ if environ is None else environ)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def start(upstream: str) -> Relay | None:
    """A running relay forwarding to ``upstream``, or None (with one ``pyrospan:`` line)."""
    try:
        relay = Relay(upstream, host=_host(os.environ))
        relay.start()
    except Exception as exc:
        log.warning(
            f"span labels: the profile relay could not start ({type(exc).__name__}: {exc}); "
            "using thread tags, exact only for steps of 10 ms or more"
        )
        return None
    return relay
