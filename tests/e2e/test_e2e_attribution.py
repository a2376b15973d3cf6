"""End to end: span labels stay right under asyncio, thread pools and cross-thread span ends.

The workload of benchmarks/attribution runs under pyrospan-run with the real profiler; each
root span burns CPU in a function of its own, and every sample is judged through the
receiver: labelled with the span whose function it is in (precision), and present for
each span's function (recall).  Bounds here are behaviour (the reference processor scores 0 to 25%
in these cases), set below the benchmark targets so that a busy CI machine does not make
them flaky; benchmarks/attribution reports the real figures.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
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

ROOT = Path(__file__).resolve().parents[2]
WORKLOAD = ROOT / "benchmarks" / "attribution" / "workload.py"
sys.path.insert(0, str(WORKLOAD.parent))
from judge import Score, score  # noqa: E402

pytestmark = pytest.mark.e2e


def run_workload(receiver: RecordingReceiver, scenario: str, *extra: str, **env: str) -> Score:
    result = run(
        [PYROSPAN_RUN, sys.executable, str(WORKLOAD), scenario, *extra],
        backend_env(receiver, OTEL_SERVICE_NAME="workload", **env),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    owner: dict[str, str] = json.loads(result.stdout.splitlines()[-1])["owner"]
    assert receiver.wait_for(lambda r: {s.span_id for s in r.spans} >= set(owner), timeout=20)
    # Every root span carries its link, whatever ran its code.
    for span in receiver.spans:
        if span.span_id in owner:
            assert span.attributes["pyroscope.profile.id"] == span.span_id
    return score(receiver.samples(), owner)


@pytest.mark.otel
@pytest.mark.parametrize("scenario", ["asyncio", "uvloop"])
def test_concurrent_tasks_on_one_loop_each_get_their_own_samples(
    receiver: RecordingReceiver, scenario: str
) -> None:
    result = run_workload(receiver, scenario, "--spans", "4", "--steps", "30")
    assert result.conflicts == 0
    assert result.precision >= 0.9, result
    assert result.recall >= 0.85, result


@pytest.mark.parametrize("scenario", ["threadpool", "to_thread", "run_in_executor"])
def test_work_handed_to_a_thread_pool_is_labelled_with_its_root_span(
    receiver: RecordingReceiver, scenario: str
) -> None:
    result = run_workload(receiver, scenario, "--spans", "3", "--steps", "24")
    assert result.conflicts == 0
    assert result.precision >= 0.9, result
    assert result.recall >= 0.85, result


def test_plain_threads_stay_right(receiver: RecordingReceiver) -> None:
    result = run_workload(receiver, "threads", "--spans", "3", "--steps", "30")
    assert result.conflicts == 0
    assert result.precision >= 0.98, result
    assert result.recall >= 0.95, result


def test_span_ended_on_another_thread_leaves_no_stale_labels(receiver: RecordingReceiver) -> None:
    result = run_workload(receiver, "cross_thread", "--spans", "1", "--steps", "40")
    assert result.recall >= 0.9, result
    assert result.unrelated_labelled == 0, result


def test_span_name_label_off_and_trace_id_label_on(receiver: RecordingReceiver) -> None:
    run_workload(
        receiver,
        "threads",
        "--spans",
        "1",
        "--steps",
        "20",
        PYROSPAN_SPAN_NAME_LABEL="false",
        PYROSPAN_TRACE_ID_LABEL="true",
    )
    (span,) = receiver.root_spans()
    labelled = receiver.samples_with_label("span_id", span.span_id)
    assert labelled
    assert all("span_name" not in s.labels for s in labelled)
    assert {s.labels["trace_id"] for s in labelled} == {span.trace_id}


@pytest.mark.otel
@pytest.mark.parametrize(
    ("paths", "functions"),
    [
        pytest.param(("/catalog", "/basket"), ("render_catalog", "render_basket"), id="async-def"),
        pytest.param(("/invoices", "/receipts"), ("export_invoices", "export_receipts"), id="def"),
    ],
)
def test_concurrent_fastapi_requests_each_attributed_to_their_span(
    receiver: RecordingReceiver, paths: tuple[str, str], functions: tuple[str, str]
) -> None:
    port = free_port()
    env = backend_env(receiver, OTEL_SERVICE_NAME="api")
    server = start_server(
        [
            PYROSPAN_RUN,
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(PROGRAMS),
            "--port",
            str(port),
            "fastapi_app:app",
        ],
        env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/docs", server)
        # One request per endpoint, at the same time: each function belongs to one span.
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda p: urlopen(base + p, timeout=30).read(), paths))
        assert receiver.wait_for(
            lambda r: sum(1 for s in r.root_spans() if s.name.endswith(paths)) >= 2, timeout=20
        )
    finally:
        stop(server)
    owner = {
        span.span_id: functions[paths.index(span.name.split()[-1])]
        for span in receiver.root_spans()
        if span.name.split()[-1] in paths
    }
    assert receiver.wait_for(lambda r: score(r.samples(), owner).judged_ms > 400, timeout=20)
    result = score(receiver.samples(), owner)
    # The reference processor scores 0 here (async: every sample carries both spans; def:
    # worker threads are unlabelled).  A sample taken just as the loop switches tasks can
    # be labelled with the next one (the profiler reads labels a moment after the stack),
    # so the bound leaves room for that on a busy machine.
    assert result.conflicts == 0
    assert result.precision >= 0.85, result
    assert result.recall >= 0.8, result
