"""End to end: a service whose backends are broken behaves as with healthy ones.

A Flask service runs under pyrospan-run with both PYROSCOPE_SERVER_ADDRESS and
OTEL_EXPORTER_OTLP_ENDPOINT pointed at a broken backend of each kind (see fake_backends),
answers real HTTP requests for a few seconds, then quits by itself.  Against a run with a
healthy receiver: the same answers and exit status, request latency of the same order,
each problem on stderr once (repeats come at most once a minute) in a ``pyrospan:`` line and
nothing else there, and the process gone within 1 s of the app's last statement.
"""

from __future__ import annotations

import statistics
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fake_backends import KINDS, backend
from helpers import PROGRAMS, PYROSPAN_RUN, clean_env, start_server
from recording_receiver import RecordingReceiver

pytestmark = pytest.mark.e2e

PY = sys.executable
INTERVAL = 1  # PYROSCOPE_UPLOAD_INTERVAL (the reporting interval is at least 60 s)
REQUEST_SECONDS = 2.5

# What the line about the spans says for each backend that makes exports fail in the time
# of a run (a black hole and a slow backend only make them wait).
EXPECTED_CAUSE = {
    "refused": "connection refused",
    "401": "HTTP 401 Unauthorized",
    "500": "HTTP 500 Internal Server Error",
    "garbage": "the answer is not HTTP",
}


@dataclass
class ServiceRun:
    returncode: int
    stdout: str
    stderr: str
    latencies: list[float]
    seconds: float  # from start to exit, as the test saw it
    exit_after_app: float  # from the app's last statement to the process being gone


def run_service(url: str) -> ServiceRun:
    env = clean_env(
        PYROSCOPE_SERVER_ADDRESS=url,
        OTEL_EXPORTER_OTLP_ENDPOINT=url,
        PYROSCOPE_UPLOAD_INTERVAL=str(INTERVAL),
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_SERVICE_NAME="small-service",
    )
    started = time.monotonic()
    process = start_server([PYROSPAN_RUN, PY, str(PROGRAMS / "small_service.py")], env)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("listening "), first + process.communicate()[1]
        base = f"http://127.0.0.1:{first.split()[1]}"
        latencies = []
        deadline = time.monotonic() + REQUEST_SECONDS
        while time.monotonic() < deadline:
            sent = time.monotonic()
            with urllib.request.urlopen(f"{base}/work", timeout=30) as response:
                assert response.read() == b"ok"
            latencies.append(time.monotonic() - sent)
        with urllib.request.urlopen(f"{base}/quit", timeout=30) as response:
            assert response.read() == b"bye"
        out, err = process.communicate(timeout=30)
        gone = time.monotonic()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    app_done = [float(line.split()[1]) for line in out.splitlines() if line.startswith("appdone")]
    assert len(app_done) == 1, out
    return ServiceRun(
        process.returncode,
        first + out,
        err,
        latencies,
        gone - started,
        gone - app_done[0],
    )


@pytest.fixture(scope="module")
def healthy() -> Iterator[ServiceRun]:
    with RecordingReceiver() as receiver:
        result = run_service(receiver.url)
        assert receiver.wait_for(lambda r: any("/work" in s.name for s in r.spans), timeout=10)
        yield result


def problems(stderr: str) -> Counter[str]:
    """How many lines each problem got: ``spans not sent: CAUSE`` and its repeats."""
    counts: Counter[str] = Counter()
    for line in stderr.splitlines():
        assert line.startswith("pyrospan: "), f"not a pyrospan line: {line!r}\n{stderr}"
        text = line.removeprefix("pyrospan: ").replace(" still not sent: ", " not sent: ")
        counts[text.split(";")[0].split(" (")[0]] += 1
    return counts


def test_healthy_run_is_quiet(healthy: ServiceRun) -> None:
    assert healthy.returncode == 0
    assert healthy.stderr == ""
    assert len(healthy.latencies) > 20


@pytest.mark.parametrize("kind", KINDS)
def test_broken_backend_changes_nothing_for_the_app(kind: str, healthy: ServiceRun) -> None:
    with backend(kind) as url:
        broken = run_service(url)
    # The app's own behaviour: its output, its answers, its status.
    assert broken.returncode == 0, broken.stderr
    assert broken.stdout.split()[::2] == healthy.stdout.split()[::2] == ["listening", "appdone"]
    assert "Traceback" not in broken.stderr
    # Request latency of the same order (wide margins: a busy 2-core machine).
    assert statistics.median(broken.latencies) < 3 * statistics.median(healthy.latencies) + 0.02
    assert max(broken.latencies) < 2.0, sorted(broken.latencies)[-5:]
    # Each problem once: a run this short sees no repeat.
    counts = problems(broken.stderr)
    assert all(n == 1 for n in counts.values()), counts
    if kind in EXPECTED_CAUSE:
        assert counts[f"spans not sent: {EXPECTED_CAUSE[kind]}"] >= 1, broken.stderr
    # Whatever the backend does, the process ends within 1 s of the app.
    assert broken.exit_after_app < 1.0
