"""The program ``pyrospan-run --check`` runs: one small profile and one span, sent as the agent
sends them, and what became of each, as one JSON line on stdout.

It runs under the bootstrap like any program (``python -m pyrospan_launch.agent.checkup``),
so the profile goes through the same relay, proxy, TLS, auth, tenant and headers, and the
span through the same exporter.  It makes one root span that burns a little CPU, then
sends the profile window (``pyroscope.shutdown()``, which hands it to the relay) and the
span (the provider's ``force_flush``) together, and waits at most :data:`WAIT` seconds in
all: a backend that never answers is "no answer in time", not a hang.  It leaves through
``os._exit`` so nothing is sent a second time at exit.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

from pyrospan_launch.agent import agent as the_agent

# Seconds the checkup waits for both answers (the launcher's own limit is 10 s in all).
WAIT = 3.5
# CPU seconds burnt inside the span, for a profile with samples in it.
BURN = 0.15


def _burn(seconds: float) -> int:
    count = 0
    end = time.process_time() + seconds
    while time.process_time() < end:
        count += 1
    return count


def _profile_result(agent: the_agent.Agent, deadline: float) -> dict[str, Any]:
    config = agent.config
    if not agent.profiling or config is None or config.profiler is None:
        reason = config.off_reasons.get("profiling", "not started") if config else "not started"
        return {"ok": False, "what": f"profiling is off ({reason})"}
    result: dict[str, Any] = {"service_name": config.profiler.application_name}
    relay = agent.relay
    import pyroscope

    # The last window goes to the relay at once (or, without one, to the server).
    stopper = threading.Thread(target=pyroscope.shutdown, daemon=True)
    stopper.start()
    stopper.join(max(0.0, deadline - time.monotonic()))
    if relay is None:
        result.update(ok=False, what="the relay did not start, so no answer can be read")
        return result
    result["server"] = relay.upstream_shown
    while relay.stats.received == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    if relay.stats.received == 0:
        result.update(ok=False, what="pyroscope-io sent no profile to the relay")
        return result
    finished = relay.drain(max(0.0, deadline - time.monotonic()))
    stats = relay.stats
    if not finished and stats.last_status is None and not stats.last_cause:
        result.update(ok=False, what=f"no answer in time (waited {WAIT:g} s)")
    elif stats.last_cause:
        result.update(ok=False, status=stats.last_status, what=stats.last_cause)
    else:
        result.update(ok=True, status=stats.last_status, what="accepted")
    return result


def _span_result(agent: the_agent.Agent, span: Any, deadline: float) -> dict[str, Any]:
    config = agent.config
    if not agent.tracing or config is None or not config.tracing:
        reason = config.off_reasons.get("tracing", "not started") if config else "not started"
        return {"ok": False, "what": f"tracing is off ({reason})"}
    from opentelemetry import trace

    result: dict[str, Any] = {
        "service_name": str(span.resource.attributes.get("service.name", "")),
    }
    provider = trace.get_tracer_provider()
    flush = getattr(provider, "force_flush", None)
    if flush is None:
        result.update(ok=False, what="the tracer provider is not the SDK's")
        return result
    outcome: dict[str, Any] = {}

    def flush_now() -> None:
        outcome["flushed"] = flush(int(WAIT * 1000))

    flusher = threading.Thread(target=flush_now, daemon=True)
    flusher.start()
    filters = agent.export_filters
    failures = filters[0].last_failure if filters is not None else {}
    while flusher.is_alive() and "spans" not in failures and time.monotonic() < deadline:
        flusher.join(0.02)
    if "spans" in failures:
        cause, reason = failures["spans"]
        result.update(ok=False, what=cause + (f": {reason}" if reason else ""))
    elif flusher.is_alive() or not outcome.get("flushed"):
        result.update(ok=False, what=f"no answer in time (waited {WAIT:g} s)")
    else:
        result.update(ok=True, status="2xx", what="accepted")
    return result


def main() -> None:
    """Send, wait, print the JSON line, leave."""
    agent = the_agent.current()
    if agent is None:
        print(json.dumps({"error": "the bootstrap did not run in the checkup"}), flush=True)
        os._exit(2)
    span = None
    if agent.tracing:
        from opentelemetry import trace

        tracer = trace.get_tracer("pyrospan-run --check")
        with tracer.start_as_current_span("pyrospan-run --check") as current:
            _burn(BURN)
            span = current
    else:
        _burn(BURN)
    deadline = time.monotonic() + WAIT
    results: dict[str, Any] = {}

    def profiles() -> None:
        results["profiles"] = _profile_result(agent, deadline)

    worker = threading.Thread(target=profiles, daemon=True)
    worker.start()
    results["spans"] = _span_result(agent, span, deadline)
    worker.join(max(0.0, deadline - time.monotonic()) + 0.5)
    results.setdefault("profiles", {"ok": False, "what": "no answer in time"})
    sys.stdout.write(json.dumps(results) + "\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
