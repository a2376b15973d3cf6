"""Start the Pyroscope profiler (pyroscope-io) from a validated configuration."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

from pyrospan_launch.agent.app_profiler import ConfigureHandover
from pyrospan_launch.agent.lifecycle import Lifecycle
from pyrospan_launch.agent.relay.server import TOKEN_HEADER, Relay
from pyrospan_launch.agent.spans.labels import LabelSwitch
from pyrospan_launch.common import log
from pyrospan_launch.settings.config import ProfilerConfig

# typing for type checkers only: importing it costs every process milliseconds at start-up
# (docs/design.md, start-up imports).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


# Seconds the exit flush waits for the relay's last pushes (the lifecycle allows 0.5 s in
# all; what is left is for the one summary line).
_EXIT_DRAIN = 0.4


class ProfilerError(RuntimeError):
    """pyroscope-io refused to start."""


def _configure(config: ProfilerConfig, relay: Relay | None = None) -> None:
    import pyroscope

    from pyrospan_launch.agent import relay as relays

    server_address = config.server_address
    http_headers = dict(config.http_headers)
    if relay is not None:
        # pyroscope-io pushes to this process's relay, which forwards to the server.
        server_address = relay.address
        http_headers[TOKEN_HEADER] = relay.token
    with relays.direct(relay):
        started = pyroscope.configure(
            application_name=config.application_name,
            server_address=server_address,
            basic_auth_username=config.basic_auth_user,
            basic_auth_password=config.basic_auth_password,
            sample_rate=config.sample_rate,
            oncpu=config.oncpu,
            # Wall-clock span profiles must see threads that wait with the GIL released
            # (I/O, sleep); pyroscope-io samples only the GIL holder unless told otherwise.
            gil_only=config.oncpu,
            tags=dict(config.tags),
            tenant_id=config.tenant_id,
            http_headers=http_headers,
            upload_interval=config.upload_interval,
            mem_enabled=config.profile_memory,
            # A `pid` label on every sample, the process's own (workers of a prefork server
            # apart); it matches the `process.pid` resource attribute of its spans.
            report_pid=True,
        )
    if started is False:
        raise ProfilerError("pyroscope.configure() returned False")


def installed() -> bool:
    """True when pyroscope-io can be imported (not so where it has no wheel: README)."""
    try:
        import pyroscope  # noqa: F401
    except ImportError as exc:
        from pyrospan_launch.common import profiler_support

        # Another module missing inside pyroscope-io: start() fails on it, reported then.
        return not profiler_support.is_missing(exc)
    return True


def _no_tag(key: str, value: str) -> None:
    """Stands for pyroscope-io's thread-tag calls where it is not installed."""


def links_only() -> LabelSwitch:
    """The label switch for a process without pyroscope-io: spans linked, nothing labelled."""
    return LabelSwitch(_no_tag, _no_tag)


def _tag_functions(pyroscope: Any) -> tuple[Any, Any]:
    """The thread-tag functions, native ones when present.

    ``pyroscope.add_thread_tag`` only forwards to its native module; calling that
    directly halves the cost of a label switch, which every root span pays four times.
    """
    native = getattr(pyroscope, "_native", None)
    add = getattr(native, "add_thread_tag", None)
    remove = getattr(native, "remove_thread_tag", None)
    if callable(add) and callable(remove):
        return add, remove
    return pyroscope.add_thread_tag, pyroscope.remove_thread_tag


def start(
    config: ProfilerConfig,
    lifecycle: Lifecycle,
    span_labels: str = "tags",
    spans_follow: Callable[[str], str] | None = None,
    *,
    on_relay: Callable[[Relay], None] | None = None,
) -> LabelSwitch:
    """Configure pyroscope-io and return the handle that labels threads' samples.

    pyroscope-io pushes to this process's relay, which forwards to the server and says
    when a push is not delivered (pushing directly, pyroscope-io reports nothing readable).
    ``span_labels="frames"`` also makes the relay turn root spans' marker frames into
    sample labels; with "tags" it passes pushes on as they came.  Without a relay
    (it could not start) pyroscope-io pushes directly and span labels are thread tags.
    ``spans_follow`` is called with the application name an app's own
    ``pyroscope.configure()`` gives (see :class:`ConfigureHandover`).  Forked children
    start their own relay, configure the profiler again (its sampler does not survive
    fork) and put back the labels of the span that was open on the forking thread, if
    any.  The last profile window is sent at exit, within the lifecycle's exit deadline.
    ``on_relay`` is given the relay once it runs.
    """
    import pyroscope

    from pyrospan_launch.agent import relay as relays

    frames = span_labels == "frames"
    relay = relays.start(config.server_address, frames=frames)
    if relay is not None and on_relay is not None:
        on_relay(relay)
    _configure(config, relay)
    labels = LabelSwitch(*_tag_functions(pyroscope), frames=frames and relay is not None)
    if relay is not None:
        # Loaded when span linking starts, not on the relay's threads (Relay.warm_up).
        labels.warm_up = relay.warm_up if labels.frames else relay.load_forwarding
    handover = ConfigureHandover(labels, relay, spans_follow)

    def restart_in_child() -> None:
        if relay is not None:
            try:
                relay.restart_in_child()
            except Exception as exc:
                # Closed, so that nothing in this child pushes to it (relay.running).
                with contextlib.suppress(Exception):
                    relay.close()
                log.warning(relays.not_started(exc, labels.frames, f" in pid {os.getpid()}"))
                labels.frames = False
        child_relay = relay if relay is not None and relay.running else None
        if not handover.configure_again(child_relay):  # the app's own configure() won
            _configure(config, child_relay)
        labels.reapply()
        log.debug(f"forked from {os.getppid()}: profiler restarted")

    lifecycle.after_fork_in_child(restart_in_child)
    handover.install()

    def send_last_window() -> None:
        pyroscope.shutdown()
        if relay is not None and relay.running:
            # Within the exit deadline (0.5 s), leaving time to say what was lost.
            relay.drain(_EXIT_DRAIN)
            lost = relay.summary()
            if lost is not None:
                log.warning(lost)
            log.debug(f"relay: {relay.stats.summary()}")

    # Sends the last profile window; pyroscope-io's own exit handler has no deadline.
    lifecycle.on_exit("profiles", send_last_window)
    how = f"through the relay at {relay.address}" if relay is not None else "directly"
    log.debug(
        f"profiler started: application {config.application_name!r}, "
        f"{config.sample_rate} Hz, upload every {config.upload_interval}s "
        f"to {config.server_address} {how}; span labels "
        f"{'from marker frames' if labels.frames else 'from thread tags'}"
    )
    return labels
