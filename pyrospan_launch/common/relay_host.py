"""Where the profile relay binds (loopback only), and whether it could bind there now.

Both sides need it: the agent starts the relay (``agent/relay``), ``--info`` says in the
launcher whether it could.
"""

from __future__ import annotations

from collections.abc import Mapping

# Where the relay binds; tests set another address to make it fail to start.
HOST_VARIABLE = "_PYROSPAN_RELAY_HOST"
DEFAULT_HOST = "127.0.0.1"


def relay_host(environ: Mapping[str, str]) -> str:
    """The address to bind; ValueError for one that is not a loopback address."""
    host = environ.get(HOST_VARIABLE) or DEFAULT_HOST
    if host != DEFAULT_HOST:
        import ipaddress

        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"{host} is not a loopback address")
    return host


def why_not(environ: Mapping[str, str]) -> str | None:
    """None when a relay could bind here now, else why not (for ``--info``)."""
    import socket

    try:
        host = relay_host(environ)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None
