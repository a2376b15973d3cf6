"""``pyrospan-run --check``: send one small profile and one span as the agent would, and say
what became of each.

The sending happens in a bootstrapped Python process
(:mod:`pyrospan_launch.agent.checkup`), with the environment a program would get, so the
relay, the proxy rules, TLS, auth, tenant and headers are the agent's own.  This side
prints one line per signal (the server, the proxy, the answer, the service name) and
exits 0 only when both were accepted.  The checkup waits 3.5 s at most; this side gives it
:data:`LIMIT` seconds in all, start-up included.  Nothing printed holds a secret: servers
are shown without credentials and the checkup's words are scrubbed again here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

from pyrospan_launch.common import proxies, redact
from pyrospan_launch.settings import reads
from pyrospan_launch.settings.config import resolve
from pyrospan_launch.settings.parsers import url_shown

# Seconds the whole check may take.
LIMIT = 9.5
EXIT_ACCEPTED = 0
EXIT_NOT_ACCEPTED = 1


def _route(proxy: proxies.Proxy | None) -> str:
    return f"through the proxy {proxy.shown}" if proxy else "directly"


def run(env: Mapping[str, str], say: Any = print) -> int:
    """Run the checkup with ``env`` (a program's environment); print; the exit status."""
    config = resolve(env)
    secrets = redact.secret_values(env)
    started = time.monotonic()
    try:
        child = {**env, "PYROSPAN_CHILDREN": "false"}
        done = subprocess.run(
            [sys.executable, "-m", "pyrospan_launch.agent.checkup"],
            env=child,
            capture_output=True,
            text=True,
            timeout=LIMIT,
            check=False,
        )
        out, err = done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    took = time.monotonic() - started
    results: dict[str, Any] = {}
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            try:
                results = json.loads(line)
            except ValueError:
                continue
            break
    say("pyrospan-run --check: one small profile and one span, sent as the agent sends them")
    if not results or "error" in results:
        why = results.get("error") or (
            f"no result within {LIMIT:g} s"
            if took >= LIMIT
            else (err.strip().splitlines() or ["no result"])[-1]
        )
        say(f"  the check could not run: {redact.scrub(why, secrets)}")
        return EXIT_NOT_ACCEPTED
    lines = []
    profiles = results.get("profiles", {})
    if config.profiler is not None:
        server = url_shown(config.profiler.server_address)
        proxy = proxies.profile_proxy(config.profiler.server_address, env)
        path = "pyroscope-io -> relay on 127.0.0.1 -> "
        lines.append(("profiles", f"{path}{server} {_route(proxy)}", profiles))
    else:
        lines.append(("profiles", "", profiles))
    spans = results.get("spans", {})
    if config.tracing:
        url = reads.traces_url(env)
        route = _route(proxies.span_proxy(url, env))
        lines.append(("spans", f"OTLP exporter -> {url_shown(url)} {route}", spans))
    else:
        lines.append(("spans", "", spans))
    for name, where, result in lines:
        verdict = "accepted" if result.get("ok") else "NOT accepted"
        status = result.get("status")
        what = str(result.get("what", ""))
        if status and f"HTTP {status}" not in what and result.get("ok"):
            what = f"HTTP {status}"
        service = result.get("service_name")
        say(f"  {name:<9} {verdict}: {redact.scrub(what, secrets)}")
        if where:
            say(f"            {where}")
        if service:
            label = "service_name" if name == "profiles" else "service.name"
            hint = ""
            if service.startswith("unknown_service"):
                hint = " (name it: OTEL_SERVICE_NAME, or pyrospan-run --check COMMAND...)"
            say(f"            {label}={service}{hint}")
    accepted = bool(profiles.get("ok")) and bool(spans.get("ok"))
    say(f"result: {'both accepted' if accepted else 'not both accepted'} ({took:.1f} s)")
    return EXIT_ACCEPTED if accepted else EXIT_NOT_ACCEPTED
