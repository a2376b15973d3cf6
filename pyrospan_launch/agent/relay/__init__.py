"""The in-process relay that turns marker frames into span labels before profiles leave.

pyroscope-io pushes to :class:`~pyrospan_launch.agent.relay.server.Relay` on the
loopback interface; the relay rewrites each push
(:mod:`pyrospan_launch.agent.relay.rewrite`) and forwards it to the configured server.
:func:`start` starts one, or says in one line why it could not (span labels then fall
back to thread tags).  See docs/design.md.
"""

from __future__ import annotations

import os

from pyrospan_launch.agent.relay.server import TOKEN_HEADER, Relay
from pyrospan_launch.common import log
from pyrospan_launch.common.relay_host import HOST_VARIABLE, relay_host

__all__ = ["HOST_VARIABLE", "TOKEN_HEADER", "Relay", "start"]


def start(upstream: str) -> Relay | None:
    """A running relay forwarding to ``upstream``, or None (with one ``pyrospan:`` line)."""
    try:
        relay = Relay(upstream, host=relay_host(os.environ))
        relay.start()
    except Exception as exc:
        log.warning(
            f"span labels: the profile relay could not start ({type(exc).__name__}: {exc}); "
            "using thread tags, exact only for steps of 10 ms or more"
        )
        return None
    return relay
