"""End to end: with opentelemetry-distro installed or without it, the same spans, linked the same.

pyrospan-run does not depend on the distro.  An app set up for zero-code instrumentation
has it, and pyrospan-run then starts OpenTelemetry with it; an app without one gets
pyrospan-run's own start, which must do what the distro would.  The same program runs
both ways against live receivers: service name, resource, exporter and the span's
profile link must agree.
"""

from __future__ import annotations

import sys

import pytest
from helpers import PROGRAMS, PYROSPAN_RUN, backend_env, run
from recording_receiver import RecordingReceiver

from pyrospan_launch.receiver.records import ReceivedSpan

pytestmark = [pytest.mark.e2e, pytest.mark.otel]

PY = sys.executable
# Differ from one process to the next whatever starts OpenTelemetry.
PER_PROCESS = {
    "process.pid",
    "process.parent_pid",
    "process.command_args",
    "process.command_line",
    "service.instance.id",
}


def cpu_ms(receiver: RecordingReceiver, span_id: str) -> float:
    samples = receiver.samples_with_label("span_id", span_id)
    return sum(s.values[0] for s in samples if "burn_cpu_in_span" in s.stack) / 1e6


def traced(**extra: str) -> tuple[ReceivedSpan, float, str]:
    """The span of hot_span.py under pyrospan-run, its linked CPU ms, and the --info report."""
    with RecordingReceiver() as receiver:
        env = backend_env(receiver, **extra)
        command = [PY, str(PROGRAMS / "hot_span.py"), "0.5"]
        result = run([PYROSPAN_RUN, *command], env)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        span_id = result.stdout.split()[1]
        assert receiver.wait_for(lambda r: cpu_ms(r, span_id) >= 250, 15), cpu_ms(receiver, span_id)
        assert receiver.wait_for(lambda r: bool(r.spans), 15)
        (span,) = receiver.spans
        assert span.span_id == span_id
        info = run([PYROSPAN_RUN, "--info", *command], env)
        assert info.returncode == 0, info.stderr
        return span, cpu_ms(receiver, span_id), info.stdout


def test_with_and_without_the_distro_the_spans_agree(distro_dir: str) -> None:
    without, without_ms, without_info = traced()
    with_distro, with_ms, with_info = traced(PYTHONPATH=distro_dir)

    for span in (without, with_distro):
        assert span.name == "checkout"
        assert span.attributes["pyroscope.profile.id"] == span.span_id
        assert span.resource["service.name"] == "hot_span"
    assert {k: v for k, v in without.resource.items() if k not in PER_PROCESS} == {
        k: v for k, v in with_distro.resource.items() if k not in PER_PROCESS
    }
    assert set(without.resource) == set(with_distro.resource)
    assert without.attributes.keys() == with_distro.attributes.keys()
    assert without_ms >= 250 and with_ms >= 250

    # --info says which start each run gets.
    assert "  distro         none installed: pyrospan-run's defaults" in without_info
    assert (
        "  configurator   none installed: pyrospan-run configures the SDK with "
        "opentelemetry.sdk._configuration._OTelSDKConfigurator"
    ) in without_info
    assert "  distro         distro (opentelemetry.distro:OpenTelemetryDistro, " in with_info
    assert (
        "  configurator   configurator (opentelemetry.distro:OpenTelemetryConfigurator, "
    ) in with_info


@pytest.mark.parametrize("distro", [False, True], ids=["without-distro", "with-distro"])
def test_traces_exporter_none_sends_no_spans_either_way(distro: bool, distro_dir: str) -> None:
    with RecordingReceiver() as receiver:
        extra = {"PYTHONPATH": distro_dir} if distro else {}
        env = backend_env(receiver, OTEL_TRACES_EXPORTER="none", **extra)
        result = run([PYROSPAN_RUN, PY, str(PROGRAMS / "hot_span.py"), "0.3"], env)
        assert result.returncode == 0, result.stderr
        span_id = result.stdout.split()[1]
        # The profile still arrives, linked; the span goes nowhere.
        assert receiver.wait_for(lambda r: cpu_ms(r, span_id) >= 100, 15)
        assert receiver.spans == []
