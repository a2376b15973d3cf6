"""End to end: apps that name their profiles with ``pyroscope.configure()`` get spans of that name.

Grafana's "Profiles for this span" looks a span's profile up under the ``service_name``
equal to the span's ``service.name``.  Two apps written for pyroscope-io run unmodified
under pyrospan-run, with no OTEL_SERVICE_NAME of the user's: a Flask app that builds its
own TracerProvider, and a FastAPI app under uvicorn.  Either the series that holds the
request span's samples carries the span's service.name as its service_name, or
pyrospan-run printed the one line that names both names and the variable to set.
"""

from __future__ import annotations

import json
import sys
from urllib.request import urlopen

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

pytestmark = [pytest.mark.e2e, pytest.mark.otel]

PY = sys.executable
CONFIGURED = (
    "pyrospan: the app called pyroscope.configure() itself: its settings replace the "
    "PYROSCOPE_* ones (application_name {name!r})"
)
TAKEN_OVER = (
    "pyrospan: the app set its own TracerProvider: it replaces pyrospan-run's (the app's "
    "exporter and resource are used, not the OTEL_* ones); its root spans are linked to profiles"
)


def series_of(receiver: RecordingReceiver, span_id: str) -> set[str]:
    """The service_name of every profile series holding a sample labelled ``span_id``."""
    return {
        series.service_name
        for series in receiver.profiles
        for sample in series.samples
        if sample.labels.get("span_id") == span_id
    }


def span_and_series(
    receiver: RecordingReceiver, span_id: str, function: str
) -> tuple[str, set[str]]:
    """The span's service.name and the service_names of the series with its samples."""
    assert receiver.wait_for(lambda r: any(s.span_id == span_id for s in r.spans), 15)
    (span,) = [s for s in receiver.spans if s.span_id == span_id]
    assert span.attributes["pyroscope.profile.id"] == span_id
    assert receiver.wait_for(
        lambda r: any(
            function in s.stack and s.labels.get("span_id") == span_id
            for p in r.profiles
            for s in p.samples
        ),
        15,
    )
    return str(span.resource["service.name"]), series_of(receiver, span_id)


def test_flask_app_with_its_own_provider_configured_after_the_profiler() -> None:
    with RecordingReceiver() as receiver:
        program = [PY, str(PROGRAMS / "named_flask_app.py"), "profiler-first"]
        result = run([PYROSPAN_RUN, *program], backend_env(receiver))
        assert result.returncode == 0, result.stderr
        assert result.stderr.splitlines() == [
            CONFIGURED.format(name="flask-shop")
            + "; spans take service.name 'flask-shop' too, so span profiles stay linked",
            TAKEN_OVER,
        ]
        span_id = result.stdout.split()[1]
        service, series = span_and_series(receiver, span_id, "flask_shop_work")
        assert service == "flask-shop"
        assert series == {service}


def test_flask_app_whose_provider_came_first_is_told_what_to_set() -> None:
    with RecordingReceiver() as receiver:
        program = [PY, str(PROGRAMS / "named_flask_app.py"), "provider-first"]
        result = run([PYROSPAN_RUN, *program], backend_env(receiver))
        assert result.returncode == 0, result.stderr
        # Its resource was fixed before the app named its profiles: one line says so.
        assert result.stderr.splitlines() == [
            TAKEN_OVER,
            CONFIGURED.format(name="flask-shop")
            + "; but spans have service.name 'named_flask_app' and profiles service_name "
            "'flask-shop', so Grafana finds no profile for a span: "
            "set OTEL_SERVICE_NAME=flask-shop",
        ]
        span_id = result.stdout.split()[1]
        service, series = span_and_series(receiver, span_id, "flask_shop_work")
        assert (service, series) == ("named_flask_app", {"flask-shop"})

        # Doing what the line says makes the names agree, and nothing more is said.
        receiver.clear()
        env = backend_env(receiver, OTEL_SERVICE_NAME="flask-shop")
        result = run([PYROSPAN_RUN, *program], env)
        assert result.returncode == 0, result.stderr
        assert result.stderr.splitlines() == [
            TAKEN_OVER,
            CONFIGURED.format(name="flask-shop") + "; span profiles stay linked",
        ]
        span_id = result.stdout.split()[1]
        service, series = span_and_series(receiver, span_id, "flask_shop_work")
        assert (service, series) == ("flask-shop", {"flask-shop"})


def test_fastapi_app_under_uvicorn_gets_spans_named_like_its_profiles() -> None:
    with RecordingReceiver() as receiver:
        port = free_port()
        server = start_server(
            [
                PYROSPAN_RUN,
                PY,
                "-m",
                "uvicorn",
                "--app-dir",
                str(PROGRAMS),
                "--port",
                str(port),
                "named_fastapi_app:app",
            ],
            backend_env(receiver),
        )
        try:
            wait_for_http(f"http://127.0.0.1:{port}/docs", server)
            with urlopen(f"http://127.0.0.1:{port}/work", timeout=30) as answer:
                span_id = json.loads(answer.read())["span_id"]
            service, series = span_and_series(receiver, span_id, "fastapi_shop_work")
        finally:
            _, err = stop(server)
        # Without the app's name, the spans would be "uvicorn", from the command line.
        assert service == "fastapi-shop"
        assert series == {service}
        notices = [line for line in err.splitlines() if line.startswith("pyrospan")]
        assert notices == [
            CONFIGURED.format(name="fastapi-shop")
            + "; spans take service.name 'fastapi-shop' too, so span profiles stay linked"
        ]
