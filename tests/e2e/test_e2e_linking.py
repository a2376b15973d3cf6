"""End to end: root spans linked to the CPU samples of their own code, with the real profiler.

Programs and real servers (gunicorn with Flask and Django, ``flask run``) run under
pyrospan-run; the receiver decodes what Pyroscope and an OTLP backend would receive.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import (
    PROGRAMS,
    PYROSPAN_RUN,
    backend_env,
    free_port,
    run,
    start_server,
    stop,
    wait_for_http,
)
from recording_receiver import RecordingReceiver

from pyrospan_launch.receiver.records import ReceivedSpan

pytestmark = pytest.mark.e2e

PY = sys.executable


def cpu_ms_of(receiver: RecordingReceiver, span_id: str, function: str) -> float:
    """CPU milliseconds of samples labelled ``span_id`` with ``function`` on their stack."""
    nanoseconds = sum(
        s.values[0] for s in receiver.samples_with_label("span_id", span_id) if function in s.stack
    )
    return nanoseconds / 1e6


def assert_linked(
    receiver: RecordingReceiver, span: ReceivedSpan, function: str, min_ms: float = 100
) -> None:
    """The span carries its profile id and its samples show ``function`` for ``min_ms``."""
    assert span.attributes.get("pyroscope.profile.id") == span.span_id
    assert receiver.wait_for(
        lambda r: cpu_ms_of(r, span.span_id, function) >= min_ms, timeout=20
    ), (
        f"{cpu_ms_of(receiver, span.span_id, function)} ms of {function} "
        f"labelled span_id={span.span_id}"
    )
    labelled = receiver.samples_with_label("span_id", span.span_id)
    assert {s.labels.get("span_name") for s in labelled} == {span.name}


@pytest.mark.otel
def test_root_span_linked_to_its_hot_function(receiver: RecordingReceiver) -> None:
    env = backend_env(receiver)
    result = run([PYROSPAN_RUN, PY, str(PROGRAMS / "hot_span.py"), "1.2"], env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    span_id = result.stdout.split()[1]
    assert receiver.wait_for(lambda r: any(s.span_id == span_id for s in r.spans), timeout=20)
    (span,) = [s for s in receiver.spans if s.span_id == span_id]
    assert span.is_root and span.name == "checkout"
    assert_linked(receiver, span, "burn_cpu_in_span")
    # Traces and profiles name the same service, so Grafana's default mapping matches.
    assert span.resource["service.name"] == "hot_span"
    series = [
        p for p in receiver.profiles if any(s.labels.get("span_id") == span_id for s in p.samples)
    ]
    assert series and {p.service_name for p in series} == {"hot_span"}
    assert {p.name for p in series} == {"process_cpu"}


def test_resource_identity_becomes_profile_labels(receiver: RecordingReceiver) -> None:
    env = backend_env(
        receiver,
        OTEL_RESOURCE_ATTRIBUTES="service.name=cart,service.namespace=shop,service.version=2.1",
        PYROSCOPE_LABELS="team=payments",
    )
    result = run([PYROSPAN_RUN, PY, str(PROGRAMS / "hot_span.py"), "0.5"], env)
    assert result.returncode == 0, result.stderr
    assert receiver.wait_for(lambda r: bool(r.profiles), timeout=20)
    labels = receiver.profiles[0].labels
    assert labels["service_name"] == "cart"
    assert labels["service_namespace"] == "shop"
    assert labels["service_version"] == "2.1"
    assert labels["team"] == "payments"


def test_unsampled_trace_gets_no_profile_link(receiver: RecordingReceiver) -> None:
    env = backend_env(receiver, OTEL_TRACES_SAMPLER="always_off")
    result = run([PYROSPAN_RUN, PY, str(PROGRAMS / "hot_span.py"), "0.6"], env)
    assert result.returncode == 0, result.stderr
    assert receiver.wait_for(lambda r: bool(r.samples()), timeout=20)
    assert not any("span_id" in s.labels for s in receiver.samples())
    assert receiver.spans == []


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=30) as response:
        data: dict[str, object] = json.loads(response.read())
        return data


def server_spans(receiver: RecordingReceiver, route_part: str) -> list[ReceivedSpan]:
    name = route_part.strip("/")
    return [s for s in receiver.root_spans() if name in s.name and s.kind == 2]


@pytest.mark.otel
@pytest.mark.parametrize(
    ("server_args", "app", "path", "function"),
    [
        pytest.param(
            ["gunicorn", "-w", "2", "-k", "sync"],
            "flask_app:app",
            "/invoice",
            "render_invoice",
            id="gunicorn-sync-flask",
        ),
        pytest.param(
            ["gunicorn", "-w", "1", "-k", "gthread", "--threads", "4"],
            "django_app:application",
            "/report",
            "compute_report",
            id="gunicorn-gthread-django",
        ),
    ],
)
def test_wsgi_server_requests_linked_in_every_worker(
    receiver: RecordingReceiver, server_args: list[str], app: str, path: str, function: str
) -> None:
    port = free_port()
    env = backend_env(receiver, OTEL_SERVICE_NAME="web")
    gunicorn = [os.path.join(os.path.dirname(PY), server_args[0]), *server_args[1:]]
    server = start_server(
        [PYROSPAN_RUN, *gunicorn, "-b", f"127.0.0.1:{port}", "--chdir", str(PROGRAMS), app], env
    )
    try:
        url = f"http://127.0.0.1:{port}{path}"
        wait_for_http(url, server)
        # Pairs of concurrent requests: a busy sync worker leaves the next to the other one.
        with ThreadPoolExecutor(2) as pool:
            pids = {p for _ in range(3) for p in pool.map(lambda _: get_json(url)["pid"], [0, 1])}
        assert receiver.wait_for(lambda r: len(server_spans(r, path)) >= 7, timeout=20)
    finally:
        _, err = stop(server)
    workers = int(server_args[server_args.index("-w") + 1])
    assert len(pids) == workers, "requests should have reached every worker"
    spans = server_spans(receiver, path)
    assert all(s.attributes.get("pyroscope.profile.id") == s.span_id for s in spans)
    # Every request's span is linked to CPU samples of the view, whichever worker ran it.
    for span in spans:
        assert_linked(receiver, span, function, min_ms=60)
    assert "Traceback" not in err


def test_flask_run_threaded_dev_server(receiver: RecordingReceiver) -> None:
    port = free_port()
    env = backend_env(
        receiver, OTEL_SERVICE_NAME="devserver", FLASK_APP=str(PROGRAMS / "flask_app.py")
    )
    flask = os.path.join(os.path.dirname(PY), "flask")
    server = start_server([PYROSPAN_RUN, flask, "run", "--port", str(port), "--no-reload"], env)
    try:
        url = f"http://127.0.0.1:{port}/invoice"
        wait_for_http(url, server)
        for _ in range(2):
            get_json(url)
        assert receiver.wait_for(lambda r: len(server_spans(r, "/invoice")) >= 3, timeout=20)
    finally:
        stop(server)
    span = server_spans(receiver, "/invoice")[-1]
    assert_linked(receiver, span, "render_invoice")
