"""The environment of a program run in local mode: both signals go to the local receiver.

Pure functions, like :mod:`pyrospan_launch.launcher.child_env`, whose result they start from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from pyrospan_launch.common import proxies

#: Where the signals would otherwise go; local mode replaces them all.
BACKEND_VARIABLES: Final = (
    "PYROSCOPE_SERVER_ADDRESS",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_TRACES_EXPORTER",
)

#: Short intervals so the live page fills while the program runs, unless the user chose.
LIVE_DEFAULTS: Final = {
    "PYROSCOPE_UPLOAD_INTERVAL": "1",
    "OTEL_BSP_SCHEDULE_DELAY": "1000",
}


def without_backend(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without the backend settings (local mode sets its own) or PYROSPAN_LOCAL.

    PYROSPAN_LOCAL goes so that a ``pyrospan-run`` the program starts itself reports to
    this receiver (it inherits the address) instead of starting a local mode of its own.
    """
    drop = {*BACKEND_VARIABLES, "PYROSPAN_LOCAL"}
    return {key: value for key, value in environ.items() if key not in drop}


def pointed_at(environ: Mapping[str, str], receiver_url: str) -> dict[str, str]:
    """The child's environment: profiles and OTLP/HTTP traces to ``receiver_url``.

    The receiver is on this host's loopback, which no proxy can reach: with a proxy
    variable set, its host joins ``NO_PROXY`` (and ``no_proxy``), for both signals.
    """
    env = without_backend(environ)
    if proxies.any_proxy(env):
        from urllib.parse import urlsplit

        env.update(proxies.direct_to(env, urlsplit(receiver_url).hostname or "127.0.0.1"))
    env.update(
        PYROSCOPE_SERVER_ADDRESS=receiver_url,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver_url,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",  # the receiver speaks OTLP over HTTP
        OTEL_TRACES_EXPORTER="otlp",
    )
    for name, value in LIVE_DEFAULTS.items():
        if not env.get(name, "").strip():
            env[name] = value
    return env


def export_lines(receiver_url: str) -> list[str]:
    """Shell lines that point other processes at a receiver started with ``--serve``."""
    return [
        f"export PYROSCOPE_SERVER_ADDRESS={receiver_url}",
        f"export OTEL_EXPORTER_OTLP_ENDPOINT={receiver_url}",
        *(f"export {name}={value}" for name, value in LIVE_DEFAULTS.items()),
    ]
