"""End to end: span labels are exact at sub-millisecond task steps and pool items (marker frames).

The attribution workload runs under pyrospan-run with the real profiler and the real
relay; every CPU sample that reaches the receiver is judged (benchmarks/attribution's
judge): labelled with the span whose function it is in, for each span's function.  At
0.3 ms of CPU per step, thread tags score 20 to 60% here; the bounds below sit under the
benchmark's figures so that a busy machine does not make them flaky.  No marker frame
may reach the backend, and the relay's own ways of failing are checked where a user
would meet them: the fallback line, an app's own ``pyroscope.configure()``, the headers.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_backends import Recorded, recording_backend
from helpers import PYROSPAN_RUN, backend_env, clean_env, run
from recording_receiver import RecordingReceiver

from pyrospan_launch.agent.spans.span_markers import PREFIX
from pyrospan_launch.receiver.profiles import decode_push
from pyrospan_launch.receiver.records import ProfileSample

ROOT = Path(__file__).resolve().parents[2]
WORKLOAD = ROOT / "benchmarks" / "attribution" / "workload.py"
sys.path.insert(0, str(WORKLOAD.parent))
from judge import Score, score  # noqa: E402
from web import run_web  # noqa: E402

pytestmark = pytest.mark.e2e

STEP_MS = "0.3"


def no_marker_frames(samples: list[ProfileSample]) -> None:
    marked = [s.stack for s in samples if any(f.startswith(PREFIX) for f in s.stack)]
    assert marked == [], marked[:3]
    files = {frame.filename for s in samples for frame in s.frames}
    assert all(not f.startswith(PREFIX) for f in files)


def workload(
    receiver: RecordingReceiver, scenario: str, *extra: str, **env: str
) -> tuple[Score, str]:
    result = run(
        [PYROSPAN_RUN, sys.executable, str(WORKLOAD), scenario, *extra],
        backend_env(receiver, OTEL_SERVICE_NAME="workload", **env),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    owner: dict[str, str] = json.loads(result.stdout.splitlines()[-1])["owner"]
    assert receiver.wait_for(lambda r: {s.span_id for s in r.spans} >= set(owner), timeout=20)
    samples = receiver.samples()
    no_marker_frames(samples)
    return score(samples, owner), result.stderr


SUB_MS = ("--spans", "6", "--steps", "600", "--slice-ms", STEP_MS)


@pytest.mark.parametrize("scenario", ["asyncio", "uvloop", "pool_items"])
def test_sub_millisecond_steps_carry_their_own_span(
    receiver: RecordingReceiver, scenario: str
) -> None:
    result, stderr = workload(receiver, scenario, *SUB_MS)
    assert stderr == ""
    assert result.conflicts == 0
    assert result.precision >= 0.95, result
    assert result.recall >= 0.9, result


# Real services run 40 to 100 frames deep.  At 60 frames between the marker and the CPU,
# py-spy glued one step's leaf to another step's marker (asyncio precision 0.67 to 0.85,
# pool 0.21 on 3.11); the Stack sampler reads the stack of the step that runs.  Before
# 3.12 its wall-clock loop tears some deep samples, which stay unlabelled (0.70 to 0.94
# measured on 3.11 on a busy machine; py-spy 0.18 to 0.63): recall is lower there,
# precision is not.
DEEP = ("--spans", "6", "--steps", "1500", "--slice-ms", "0.1", "--depth", "60")
DEEP_RECALL = 0.95 if sys.version_info >= (3, 12) else 0.5
# On 3.10 the wall-clock loop put 0.8 to 3% of a deep pool's samples under another span
# (py-spy: 44%); from 3.11 none were.
DEEP_PRECISION = 0.995 if sys.version_info >= (3, 11) else 0.95


@pytest.mark.parametrize(
    ("scenario", "sampler"),
    [("asyncio", "auto"), ("uvloop", "auto"), ("pool_items", "stack")],
)
def test_steps_sixty_frames_deep_carry_their_own_span(
    receiver: RecordingReceiver, scenario: str, sampler: str
) -> None:
    # pool_items opens its root spans by hand on plain threads, which moves `auto` to
    # py-spy: the pool's own exactness is asked of the Stack sampler by name.
    result, _ = workload(receiver, scenario, *DEEP, PYROSPAN_SAMPLER=sampler)
    assert result.conflicts == 0
    assert result.precision >= DEEP_PRECISION, result
    assert result.recall >= DEEP_RECALL, result


@pytest.mark.parametrize("scenario", ["to_thread", "run_in_executor"])
def test_sub_millisecond_hand_offs_carry_their_own_span(
    receiver: RecordingReceiver, scenario: str
) -> None:
    # Items of 4 slices (1.2 ms) each, handed from asyncio tasks to the default executor.
    result, _ = workload(
        receiver, scenario, "--spans", "6", "--steps", "400", "--slice-ms", STEP_MS
    )
    assert result.conflicts == 0
    assert result.precision >= 0.95, result
    assert result.recall >= 0.9, result


def test_wall_clock_mode_is_exact_too(receiver: RecordingReceiver) -> None:
    result, _ = workload(receiver, "asyncio", *SUB_MS, PYROSCOPE_ONCPU="false")
    assert result.conflicts == 0
    assert result.precision >= 0.95, result
    assert result.recall >= 0.9, result


def test_tags_method_is_still_there_for_comparison(receiver: RecordingReceiver) -> None:
    result, stderr = workload(
        receiver, "threads", "--spans", "3", "--steps", "30", PYROSPAN_SPAN_LABELS="tags"
    )
    assert stderr == ""
    assert result.precision >= 0.98, result
    assert result.recall >= 0.95, result


def test_relay_that_cannot_start_falls_back_to_thread_tags_with_one_line(
    receiver: RecordingReceiver,
) -> None:
    # The relay binds to loopback only: pointed elsewhere, it refuses to start.
    result, stderr = workload(
        receiver, "threads", "--spans", "3", "--steps", "30", _PYROSPAN_RELAY_HOST="192.0.2.1"
    )
    assert stderr.splitlines() == [
        "pyrospan: span labels: the profile relay could not start (ValueError: 192.0.2.1 is not "
        "a loopback address); using thread tags, exact only for steps of 10 ms or more"
    ]
    # Plain threads with long steps: the tags are right.
    assert result.precision >= 0.98, result
    assert result.recall >= 0.95, result


def test_an_app_that_configures_pyroscope_itself_gets_exact_span_profiles_there() -> None:
    with RecordingReceiver() as ours, RecordingReceiver() as apps:
        run_own = run(
            [
                PYROSPAN_RUN,
                sys.executable,
                str(WORKLOAD),
                "asyncio",
                *SUB_MS,
                "--own-profiler",
                apps.url,
            ],
            backend_env(ours, OTEL_SERVICE_NAME="workload"),
            timeout=120,
        )
        assert run_own.returncode == 0, run_own.stderr
        assert "the app called pyroscope.configure() itself" in run_own.stderr
        owner: dict[str, str] = json.loads(run_own.stdout.splitlines()[-1])["owner"]
        assert apps.wait_for(lambda r: score(r.samples(), owner).judged_ms >= 500, timeout=15)
        samples = apps.samples()
        no_marker_frames(samples)
        judged = score(samples, owner)
        assert judged.precision >= 0.95, judged
        assert judged.recall >= 0.9, judged
        # The app's own identity and tags reach its own server.
        assert {(p.labels.get("service_name"), p.labels.get("team")) for p in apps.profiles} == {
            ("own-app", "own")
        }


@pytest.fixture
def pyroscope_stand_in() -> Iterator[tuple[str, Recorded]]:
    """A Pyroscope stand-in that keeps every push's target, headers and body."""
    with recording_backend() as recorder:
        yield recorder


def test_auth_tenant_headers_and_series_labels_reach_the_server_unchanged(
    pyroscope_stand_in: tuple[str, Recorded], receiver: RecordingReceiver
) -> None:
    url, recorded = pyroscope_stand_in
    env = backend_env(receiver)
    env.update(
        OTEL_SERVICE_NAME="shop",
        PYROSCOPE_SERVER_ADDRESS=url,
        PYROSCOPE_BASIC_AUTH_USER="user",
        PYROSCOPE_BASIC_AUTH_PASSWORD="s3cret-pw",
        PYROSCOPE_TENANT_ID="tenant-7",
        PYROSCOPE_HTTP_HEADERS='{"X-Extra": "kept"}',
        PYROSCOPE_LABELS="region=eu",
        OTEL_RESOURCE_ATTRIBUTES="service.namespace=store",
    )
    result = run(
        [PYROSPAN_RUN, sys.executable, str(WORKLOAD), "asyncio", "--spans", "2", "--steps", "20"],
        env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "s3cret" not in result.stderr + result.stdout
    assert recorded.lowercase_headers()
    for target, headers, body in recorded.lowercase_headers():
        assert target == "/push.v1.PusherService/Push"
        assert headers["authorization"] == "Basic " + base64.b64encode(b"user:s3cret-pw").decode()
        assert headers["x-scope-orgid"] == "tenant-7"
        assert headers["x-extra"] == "kept"
        assert headers["user-agent"].startswith("pyroscope-rs/")
        assert "x-pyrospan-relay" not in headers
        for profile in decode_push(body, headers.get("content-encoding")):
            assert profile.labels["service_name"] == "shop"
            assert profile.labels["region"] == "eu"
            assert profile.labels["service_namespace"] == "store"
            assert all(sample.labels["pid"].isdigit() for sample in profile.samples)
            assert profile.name.startswith("process_cpu")
            no_marker_frames(profile.samples)
    spans = {s.span_id for s in receiver.spans}
    labelled = [
        s
        for _, headers, body in recorded.lowercase_headers()
        for p in decode_push(body, headers.get("content-encoding"))
        for s in p.samples
        if "span_id" in s.labels
    ]
    assert labelled and {s.labels["span_id"] for s in labelled} <= spans


def test_local_mode_pprof_files_hold_no_marker_frame(tmp_path: Path) -> None:
    report = tmp_path / "report"
    result = run(
        [
            PYROSPAN_RUN,
            "--local",
            "--report-dir",
            str(report),
            sys.executable,
            str(WORKLOAD),
            "asyncio",
            *SUB_MS,
        ],
        clean_env(OTEL_SERVICE_NAME="workload"),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    from pyrospan_launch.receiver.profiles import decode_pprof

    files = list((report / "pprof").glob("*.pb.gz"))
    assert len(files) >= 2
    span_samples = 0
    for file in files:
        profile = decode_pprof(file.read_bytes())
        no_marker_frames(profile.samples)
        if file.name != "process.pb.gz":
            span_samples += len(profile.samples)
    assert span_samples > 0


def test_uvicorn_service_with_awaits_between_sub_millisecond_chunks() -> None:
    # Six keep-alive clients, three async endpoints, 20 chunks of 0.3 ms each per request.
    result, samples = run_web(0.3, clients=6, seconds=2.5)
    no_marker_frames(samples)
    assert result.conflicts == 0
    assert result.precision >= 0.95, result
    assert result.recall >= 0.85, result


def test_uvicorn_request_whose_work_all_runs_in_its_first_step() -> None:
    # OpenTelemetry's ASGI middleware starts the span inside the step that then runs the
    # endpoint: one chunk, no await before it.  The marker must cover that step too.
    result, samples = run_web(0.5, clients=6, seconds=2.5, chunks=1)
    no_marker_frames(samples)
    assert result.conflicts == 0
    assert result.precision >= 0.95, result
    assert result.recall >= 0.9, result


def test_forked_gunicorn_uvicorn_workers_each_relay_their_own_exact_profiles() -> None:
    # --preload: the master starts the relay, each forked worker starts its own.
    result, samples = run_web(0.3, clients=6, seconds=3, gunicorn_workers=2, keep_alive=False)
    no_marker_frames(samples)
    pids = {s.labels.get("pid") for s in samples if "span_id" in s.labels}
    assert len(pids) == 2, pids
    assert result.conflicts == 0
    assert result.precision >= 0.95, result
    assert result.recall >= 0.85, result
