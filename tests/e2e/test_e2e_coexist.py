"""End to end: apps that do part of the job themselves get one profiler, one provider, linked spans.

Three ways an app or its command line already sets up part of what pyrospan-run does:
the app calls ``pyroscope.configure()`` itself, the app sets its own TracerProvider and
exporter, or ``opentelemetry-instrument`` is in the command too (either side of
pyrospan-run).  Each runs a real program under pyrospan-run against live receivers; the
receivers show where profiles and spans went, and stderr holds exactly one notice that
says which setup won.
"""

from __future__ import annotations

import os
import sys

import pytest
from helpers import PROGRAMS, PYROSPAN_RUN, backend_env, run
from recording_receiver import RecordingReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.otel]

PY = sys.executable
OPENTELEMETRY_INSTRUMENT = os.path.join(os.path.dirname(PY), "opentelemetry-instrument")


def cpu_ms(receiver: RecordingReceiver, function: str, span_id: str | None = None) -> float:
    """CPU ms of ``function`` at ``receiver`` (only samples labelled with ``span_id`` if given)."""
    samples = (
        receiver.samples() if span_id is None else receiver.samples_with_label("span_id", span_id)
    )
    return sum(s.values[0] for s in samples if function in s.stack) / 1e6


def test_apps_own_pyroscope_configure_wins_and_spans_stay_linked() -> None:
    with RecordingReceiver() as ours, RecordingReceiver() as apps:
        env = backend_env(ours)
        result = run([PYROSPAN_RUN, PY, str(PROGRAMS / "own_profiler.py"), apps.url], env)
        assert result.returncode == 0, result.stderr
        assert result.stderr.splitlines() == [
            "pyrospan: the app called pyroscope.configure() itself: its settings replace the "
            "PYROSCOPE_* ones (application_name 'own-app'); spans take service.name 'own-app' "
            "too, so span profiles stay linked"
        ]
        span_id = result.stdout.split()[1]
        assert "configured True" in result.stdout  # the app's call reports success, as it would
        # The span (OTEL_* settings) links to samples at the app's own Pyroscope, with its
        # application name and tags.
        assert ours.wait_for(lambda r: any(s.span_id == span_id for s in r.spans), timeout=15)
        (span,) = [s for s in ours.spans if s.span_id == span_id]
        assert span.attributes["pyroscope.profile.id"] == span_id
        # The name pyrospan-run derived gave way to the app's: Grafana looks the span's
        # profile up under service_name = service.name.
        assert span.resource["service.name"] == "own-app"
        assert apps.wait_for(lambda r: cpu_ms(r, "own_profiler_work", span_id) >= 300, 15), cpu_ms(
            apps, "own_profiler_work", span_id
        )
        assert {(p.labels.get("service_name"), p.labels.get("team")) for p in apps.profiles} == {
            ("own-app", "own")
        }
        # One profiler: pyrospan-run's stopped before the work, so it sent none of it.
        assert cpu_ms(ours, "own_profiler_work") == 0


@pytest.mark.parametrize("profiles", ["derived", "named-like-the-spans"])
def test_apps_own_tracer_provider_wins_and_its_spans_are_linked(profiles: str) -> None:
    with RecordingReceiver() as ours, RecordingReceiver() as apps:
        # The app's resource names its spans in code; profiles are named after the command
        # unless PYROSCOPE_APPLICATION_NAME says otherwise.
        extra = {"PYROSCOPE_APPLICATION_NAME": "own-traces"} if profiles != "derived" else {}
        env = backend_env(ours, **extra)
        command = [PY, str(PROGRAMS / "own_tracer_provider.py"), apps.url, f"{apps.url}/page"]
        result = run([PYROSPAN_RUN, *command], env)
        assert result.returncode == 0, result.stderr
        linked = (
            "its root spans carry profile ids, but spans have service.name 'own-traces' and "
            "profiles service_name 'own_tracer_provider', so Grafana finds no profile for a "
            "span: set PYROSCOPE_APPLICATION_NAME=own-traces"
            if profiles == "derived"
            else "its root spans are linked to profiles"
        )
        assert result.stderr.splitlines() == [
            "pyrospan: the app set its own TracerProvider: it replaces pyrospan-run's (the app's "
            f"exporter and resource are used, not the OTEL_* ones); {linked}"
        ]
        assert "global TracerProvider True" in result.stdout  # the app's provider is global
        span_id = result.stdout.split()[1]
        # Its root span went through its own exporter, with its resource, linked.
        assert apps.wait_for(lambda r: any(s.name == "GET" for s in r.spans), timeout=15)
        (span,) = [s for s in apps.spans if s.span_id == span_id]
        assert span.resource["service.name"] == "own-traces"
        assert span.attributes["pyroscope.profile.id"] == span_id
        assert ours.wait_for(lambda r: cpu_ms(r, "own_provider_work", span_id) >= 300, 15)
        series = {
            p.service_name
            for p in ours.profiles
            for s in p.samples
            if s.labels.get("span_id") == span_id
        }
        assert series == {"own-traces" if profiles != "derived" else "own_tracer_provider"}
        # One provider: the urllib span, from a tracer handed out before the app's provider
        # existed, went the same way, and nothing went to the OTEL_* endpoint.
        (request,) = [s for s in apps.spans if s.name == "GET"]
        assert request.attributes["pyroscope.profile.id"] == request.span_id
        assert ours.spans == []


@pytest.mark.parametrize("order", ["pyrospan-run-first", "opentelemetry-instrument-first"])
def test_with_opentelemetry_instrument_one_start_up_links_spans(order: str) -> None:
    with RecordingReceiver() as receiver:
        # opentelemetry-instrument's own default protocol is gRPC, whose exporter is not
        # installed here: a user of it sets http/protobuf, as this does.
        env = backend_env(
            receiver,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            PATH=f"{os.path.dirname(PY)}{os.pathsep}{os.environ['PATH']}",
        )
        wrappers = [PYROSPAN_RUN, OPENTELEMETRY_INSTRUMENT]
        if order == "opentelemetry-instrument-first":
            wrappers.reverse()
        result = run([*wrappers, PY, str(PROGRAMS / "hot_span.py"), "0.5"], env)
        assert result.returncode == 0, result.stderr
        assert result.stderr.splitlines() == [
            "pyrospan: opentelemetry-instrument and pyrospan-run in one command: pyrospan-run "
            "starts OpenTelemetry, once, with the same OTEL_* settings (opentelemetry-instrument's "
            "options included), and links spans to profiles"
        ]
        span_id = result.stdout.split()[1]
        assert receiver.wait_for(lambda r: cpu_ms(r, "burn_cpu_in_span", span_id) >= 250, 15), (
            cpu_ms(receiver, "burn_cpu_in_span", span_id)
        )
        # Exactly one provider sent it, once.
        assert [s.span_id for s in receiver.spans] == [span_id]
        (span,) = receiver.spans
        assert span.attributes["pyroscope.profile.id"] == span_id


@pytest.mark.parametrize("order", ["pyrospan-run-first", "opentelemetry-instrument-first"])
def test_with_tracing_off_opentelemetry_instrument_keeps_its_job(
    order: str, distro_dir: str
) -> None:
    with RecordingReceiver() as receiver:
        # opentelemetry-instrument configures the SDK only with a configurator installed:
        # an app that uses it has the distro.
        env = backend_env(
            receiver,
            PYTHONPATH=distro_dir,
            PYROSPAN_TRACING="false",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            PATH=f"{os.path.dirname(PY)}{os.pathsep}{os.environ['PATH']}",
        )
        wrappers = [PYROSPAN_RUN, OPENTELEMETRY_INSTRUMENT]
        if order == "opentelemetry-instrument-first":
            wrappers.reverse()
        result = run([*wrappers, PY, str(PROGRAMS / "hot_span.py"), "0.3"], env)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""  # nothing was overridden, so nothing to say
        span_id = result.stdout.split()[1]
        # opentelemetry-instrument traced it; pyrospan-run profiled it, unlinked.
        assert receiver.wait_for(lambda r: any(s.span_id == span_id for s in r.spans), 15)
        assert receiver.wait_for(lambda r: cpu_ms(r, "burn_cpu_in_span") >= 100, 15)
        (span,) = receiver.spans
        assert "pyroscope.profile.id" not in span.attributes
