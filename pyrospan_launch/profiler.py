"""Start the Pyroscope profiler (pyroscope-io) from a validated configuration."""

from __future__ import annotations

import os

from pyrospan_launch import lifecycle, log
from pyrospan_launch.config import ProfilerConfig
from pyrospan_launch.span_profiles import ThreadLabels


class ProfilerError(RuntimeError):
    """pyroscope-io refused to start."""


def _configure(config: ProfilerConfig) -> None:
    import pyroscope

    started = pyroscope.configure(
        application_name=config.application_name,
        server_address=config.server_address,
        basic_auth_username=config.basic_auth_user,
        basic_auth_password=config.basic_auth_password,
        sample_rate=config.sample_rate,
        oncpu=config.oncpu,
        tags=dict(config.tags),
        tenant_id=config.tenant_id,
        http_headers=dict(config.http_headers),
        upload_interval=config.upload_interval,
        mem_enabled=config.profile_memory,
    )
    if started is False:
        raise ProfilerError("pyroscope.configure() returned False")


def start(config: ProfilerConfig) -> ThreadLabels:
    """Configure pyroscope-io and return the handle that labels threads' samples.

    Forked children configure it again (its sampler does not survive fork) and put back
    the labels of the span that was open on the forking thread, if any.
    """
    import pyroscope

    _configure(config)
    labels = ThreadLabels(pyroscope.add_thread_tag, pyroscope.remove_thread_tag)

    def restart_in_child() -> None:
        _configure(config)
        labels.reapply_current()
        log.debug(f"forked from {os.getppid()}: profiler restarted")

    lifecycle.after_fork_in_child(restart_in_child)
    log.debug(
        f"profiler started: application {config.application_name!r}, "
        f"{config.sample_rate} Hz, upload every {config.upload_interval}s "
        f"to {config.server_address}"
    )
    return labels
