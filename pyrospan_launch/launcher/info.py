"""``pyrospan-run --info``: what would run, and why something would not be traced or profiled.

Everything comes from the settings registry and the same :func:`config.resolve` the
bootstrap uses, so the report cannot disagree with what the child will do.  Secret
values are never shown.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence

from pyrospan_launch import __version__
from pyrospan_launch.launcher import command as command_lookup
from pyrospan_launch.settings import reads, registry
from pyrospan_launch.settings.config import Config, resolve
from pyrospan_launch.settings.parsers import url_shown


def _section_network(config: Config, environ: Mapping[str, str]) -> list[str]:
    """How each signal leaves: the path, the proxy by that client's rules, what TLS trusts."""
    from pyrospan_launch.common import proxies, relay_host, trust

    lines = ["", "Network (what each signal's client will do with this environment):"]
    if config.profiling and config.profiler is not None:
        p = config.profiler
        # Every push goes through the relay, in either span-label mode, when it can start.
        relay = relay_host.why_not(environ) is None
        proxy = proxies.profile_proxy(p.server_address, environ)
        route = f"through the proxy {proxy.shown}" if proxy else "directly (no proxy applies)"
        first = (
            "pyroscope-io -> the relay on 127.0.0.1 (never through a proxy) -> "
            if relay
            else "pyroscope-io -> "
        )
        auth = ""
        if p.basic_auth_user or p.basic_auth_password:
            source = (
                "PYROSCOPE_BASIC_AUTH_*"
                if reads.basic_auth_variables_set(environ)
                else "the user:password in PYROSCOPE_SERVER_ADDRESS"
            )
            auth = f", basic auth as {p.basic_auth_user or '(no user)'} from {source}"
        tenant = f", X-Scope-OrgID {p.tenant_id}" if p.tenant_id else ""
        lines.append(f"  profiles  {first}{p.server_address} {route}{auth}{tenant}")
        if p.server_address.startswith("https://"):
            lines.append(f"            TLS trusts {trust.profiles_trust(environ, relay)}")
    if config.tracing and reads.traces_exporter(environ) == "otlp":
        url = reads.traces_url(environ)
        proxy = proxies.span_proxy(url, environ)
        route = f"through the proxy {proxy.shown}" if proxy else "directly (no proxy applies)"
        lines.append(f"  spans     OTLP exporter -> {url_shown(url)} {route}")
        if url.startswith("https://"):
            lines.append(f"            TLS trusts {trust.spans_trust(environ)}")
        conflict = trust.span_conflict(environ)
        if conflict:
            lines.append(f"            warning: {conflict}")
    return lines


def _python_can_bootstrap(program: str, environ: Mapping[str, str]) -> str | None:
    """For a Python interpreter command: None if it can import pyrospan_launch, else why not."""
    name = os.path.basename(program)
    if not name.startswith("python"):
        return None
    try:
        path = command_lookup.program_path(program, environ)
    except command_lookup.CommandError as exc:
        return str(exc)
    try:
        done = subprocess.run(
            # With its site-packages (where pip installs pyrospan-run) and the user's own
            # PYTHONPATH, as the program will start; not yet with the bootstrap directory.
            [path, "-c", "import pyrospan_launch"],
            capture_output=True,
            timeout=20,
            check=False,
            env=dict(environ),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{path} could not be checked: {exc}"
    if done.returncode != 0:
        return (
            f"{path} cannot import pyrospan_launch, so the program will run untraced; "
            f"install pyrospan-run into that interpreter, or run {sys.executable} instead"
        )
    return None


def _profiler_missing() -> str | None:
    """The bootstrap's line when pyroscope-io cannot be imported here, else None.

    Imported, as the bootstrap does (importing starts nothing): a module that is found
    and fails to load is missing all the same.
    """
    from pyrospan_launch.common import profiler_support

    try:
        import pyroscope  # noqa: F401
    except ImportError as exc:
        if profiler_support.is_missing(exc):
            return profiler_support.unavailable_reason()
    return None


def _section_what_runs(config: Config, environ: Mapping[str, str], derived: bool) -> list[str]:
    lines = ["", "What will run:"]
    missing = _profiler_missing() if config.profiling else None
    if missing is not None:
        lines.append(f"  profiling      off: {missing}")
    elif config.profiling and config.profiler is not None:
        p = config.profiler
        tags = ",".join(f"{k}={v}" for k, v in p.tags.items()) or "none"
        lines.append(
            f"  profiling      on: {'CPU' if p.oncpu else 'wall-clock'} samples at "
            f"{p.sample_rate} Hz to {p.server_address} every {p.upload_interval}s, "
            f"service_name={p.application_name}, labels {tags}"
        )
    else:
        lines.append(f"  profiling      off: {config.off_reasons.get('profiling', '')}")
    if config.tracing:
        protocol = reads.traces_protocol(environ)
        exporter = reads.traces_exporter(environ)
        where = (
            f"OTLP {protocol} to {url_shown(reads.traces_url(environ))}"
            if exporter == "otlp"
            else exporter
        )
        sampler = reads.traces_sampler(environ)
        note = f" ({config.off_reasons['tracing']})" if "tracing" in config.off_reasons else ""
        lines.append(f"  tracing        on: spans to {where}, sampler {sampler}{note}")
        from pyrospan_launch.common import otel_setup

        distro, configurator = otel_setup.describe(environ)
        lines.append(f"  distro         {distro}")
        lines.append(f"  configurator   {configurator}")
    else:
        lines.append(f"  tracing        off: {config.off_reasons.get('tracing', '')}")
    linked = config.profiling and config.tracing
    if linked and missing is not None:
        lines.append(
            "  span profiles  on: local root spans get pyroscope.profile.id; no CPU samples "
            "without pyroscope-io"
        )
    else:
        lines.append(
            "  span profiles  "
            + (
                "on: local root spans get pyroscope.profile.id; their CPU samples get "
                "span_id and span_name"
                if linked
                else "off: needs both profiling and tracing"
            )
        )
    if linked and missing is None:
        lines.append("  span labels    " + _span_labels_line(config, environ))
    if config.profiling and missing is None:
        lines.append("  sampler        " + _sampler_line(config))
    source = (
        "derived from the command; set OTEL_SERVICE_NAME to choose"
        if derived
        else f"from {config.service_name_source}"
    )
    lines.append(f"  service name   {config.service_name} ({source})")
    return lines


def _sampler_line(config: Config) -> str:
    """Which CPU sampler pyroscope-io runs (PYROSPAN_SAMPLER), and why."""
    sampling = config.sampling
    line = sampling.describe()
    if sampling.stack and sampling.automatic:
        line += (
            "; a process moves to py-spy, with one line, if something only py-spy can "
            "label appears (a root span outside any request, task or pool; the app's own "
            "thread tags)"
        )
    elif sampling.asked == "stack" and not sampling.stack:
        line += "; PYROSPAN_SAMPLER=stack cannot apply"
    return line


def _span_labels_line(config: Config, environ: Mapping[str, str]) -> str:
    """How root spans reach the samples (PYROSPAN_SPAN_LABELS), and whether the relay can start."""
    if not config.sampling.frames:
        return (
            "tags: thread tags switched with the running context, read by the profiler up to "
            "1 ms after the stack (PYROSPAN_SPAN_LABELS=tags)"
        )
    from pyrospan_launch.common.relay_host import why_not

    problem = why_not(environ)
    if problem is not None:
        return f"tags: the profile relay cannot start here ({problem}); frames needs it"
    return (
        "frames: each root span's work runs inside a marker frame, read with the stack; "
        "an in-process relay on 127.0.0.1 turns it into span labels and forwards the "
        "profiles to the server"
    )


def _section_instrumentations(environ: Mapping[str, str]) -> list[str]:
    from pyrospan_launch.common.installed import survey

    found = survey(environ)
    loading = [i for i in found if i.loads]
    lines = ["", f"Instrumentations ({len(loading)} of {len(found)} installed will load):"]
    if not found:
        lines.append(
            "  none installed: only spans the app makes itself will exist; install the ones "
            'for your libraries, e.g. pip install "pyrospan-run[web]", or '
            "opentelemetry-bootstrap -a requirements"
        )
    for item in found:
        status = f"will load {item.reason}" if item.loads else f"skipped: {item.reason}"
        lines.append(f"  {item.name:<16} {item.package:<48} {status}")
    return lines + _section_last_skips()


def _section_last_skips() -> list[str]:
    from pyrospan_launch.common import skipped

    last = skipped.read()
    if last is None:
        return []
    lines = [
        "",
        f"Skipped while the app ran, last time any was (pid {last.pid}, {last.when}):",
        f"  command: {last.command}",
    ]
    lines += [f"  {name:<16} {reason}" for name, reason in last.skipped]
    return lines


def _section_settings(environ: Mapping[str, str]) -> list[str]:
    lines = ["", "Settings (environment):"]
    group = ""
    for s in registry.ALL:
        if s.group != group:
            group = s.group
            lines.append(f"  [{group}]")
        lines.append(f"  {s.name:<38} {s.shown(environ)}")
    return lines


def render(
    environ: Mapping[str, str], command: Sequence[str], bootstrap: str, *, derived_name: bool
) -> str:
    """The whole ``--info`` report for running ``command`` with ``environ``.

    ``derived_name`` says the launcher named the service from the command line.
    """
    config = resolve(environ)
    lines = [
        f"pyrospan-run {__version__} on Python {sys.version.split()[0]} ({sys.executable})",
        f"bootstrap directory: {bootstrap}",
        f"command: {' '.join(command) if command else '(none given)'}",
    ]
    if command:
        problem = _python_can_bootstrap(command[0], environ)
        if problem:
            lines.append(f"  warning: {problem}")
        from pyrospan_launch.launcher.servers import describe

        server = describe(command, environ)
        if server:
            lines.append(f"  server: {server}")
    lines += _section_what_runs(config, environ, derived_name)
    lines += _section_network(config, environ)
    if config.errors:
        lines += ["", "Problems (each turns its part off for this run):"]
        lines += [f"  {error}" for error in config.errors]
    if config.notices:
        lines += ["", "Changed to fit Pyroscope's limits on labels:"]
        lines += [f"  {notice}" for notice in config.notices]
    lines += _section_instrumentations(environ)
    lines += _section_settings(environ)
    return "\n".join(lines) + "\n"
