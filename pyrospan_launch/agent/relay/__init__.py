"""The in-process relay every profile push goes through on its way to the server.

pyroscope-io pushes to :class:`~pyrospan_launch.agent.relay.server.Relay` on the
loopback interface; the relay rewrites each push that may hold marker frames
(:mod:`pyrospan_launch.agent.relay.rewrite`), passes the others on as they came, and
forwards them to the configured server, saying why when one is not delivered.
:func:`start` starts one, or says in one line why it could not and what that costs.
:func:`direct` keeps pyroscope-io's pushes to it off any proxy.  See docs/design.md.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from pyrospan_launch.agent.relay.server import TOKEN_HEADER, Relay
from pyrospan_launch.common import log, proxies
from pyrospan_launch.common.relay_host import HOST_VARIABLE, relay_host

__all__ = ["HOST_VARIABLE", "TOKEN_HEADER", "Relay", "direct", "not_started", "start"]


def start(upstream: str, *, frames: bool = True) -> Relay | None:
    """A running relay forwarding to ``upstream``, or None (with one ``pyrospan:`` line).

    ``frames``: span labels were to come from marker frames (the line says what replaces
    them); without, the relay was there to report failed pushes.
    """
    try:
        relay = Relay(upstream, host=relay_host(os.environ))
        relay.start()
    except Exception as exc:
        log.warning(not_started(exc, frames))
        return None
    return relay


def not_started(exc: BaseException, frames: bool, where: str = "") -> str:
    """The line that says the relay could not start (``where``: " in pid N") and the cost."""
    what = f"the profile relay could not start{where} ({type(exc).__name__}: {exc})"
    if frames:
        return f"span labels: {what}; using thread tags, exact only for steps of 10 ms or more"
    return (
        f"profiles: {what}; pyroscope-io pushes to the server itself, and a push it "
        "cannot deliver goes unreported"
    )


@contextlib.contextmanager
def direct(relay: Relay | None) -> Iterator[None]:
    """While pyroscope-io is configured to push to ``relay``: the relay's host in NO_PROXY.

    pyroscope-io reads the proxy variables when ``configure()`` builds its HTTP client,
    never again (measured on 1.4), so the relay's address is added to ``NO_PROXY`` for that
    call only, and the app's environment is as it was afterwards.  Without it, a proxy
    variable sends every push to the proxy, which cannot reach this host's loopback.
    """
    if relay is None or not proxies.any_proxy(os.environ):
        yield
        return
    host = relay.host
    changed = proxies.direct_to(os.environ, host)
    saved = {name: os.environ.get(name) for name in changed}
    os.environ.update(changed)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
