"""The CPU sampler, end to end: which one runs, and what moves a process from Stack to py-spy.

Real programs under ``pyrospan-run``, real pyroscope-io, a receiver that decodes the push
API.  ``auto`` takes the Stack sampler on every Python pyroscope-io has a wheel for (its
wall-clock loop before 3.12, CPU timers from 3.12): CI runs these in ``make test`` (3.11),
``make test-sampler`` (pyenv 3.13) and the 3.14 lane.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable

import pytest
from helpers import PROGRAMS, PYROSPAN_RUN, backend_env, clean_env, free_port, run, wait_for_http
from recording_receiver import RecordingReceiver

CASES = str(PROGRAMS / "sampler_cases.py")
HOT_SPAN = str(PROGRAMS / "hot_span.py")
MOVE = str(PROGRAMS / "tags_during_move.py")


def info(**env: str) -> str:
    result = subprocess.run(
        [PYROSPAN_RUN, "--info", sys.executable, "app.py"],
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return next(line for line in result.stdout.splitlines() if line.startswith("  sampler"))


def test_info_says_which_sampler_auto_takes_and_why() -> None:
    line = info()
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if sys.version_info >= (3, 12):
        assert f"Stack (auto: CPython {version} has per-thread CPU timers)" in line
    else:
        assert (
            f"Stack (auto: CPython {version}: its wall-clock loop, exact at depth where py-spy "
            "mislabels; deep asyncio stacks lose a few % of their span labels (3.12+ reads "
            "them whole))"
        ) in line


def test_info_shows_an_explicit_choice_and_one_that_cannot_apply() -> None:
    assert "py-spy (PYROSPAN_SAMPLER=pyspy: as asked)" in info(PYROSPAN_SAMPLER="pyspy")
    line = info(PYROSPAN_SAMPLER="stack", PYROSPAN_SPAN_LABELS="tags")
    assert "py-spy (PYROSPAN_SAMPLER=stack: span labels are thread tags" in line
    assert "PYROSPAN_SAMPLER=stack cannot apply" in line


def run_ok(receiver: RecordingReceiver, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    result = run([PYROSPAN_RUN, sys.executable, *args], backend_env(receiver, **env), timeout=90)
    assert result.returncode == 0, result.stderr
    return result


def test_a_wrong_sampler_is_one_line_naming_the_variable(receiver: RecordingReceiver) -> None:
    result = run_ok(receiver, HOT_SPAN, "0.1", PYROSPAN_SAMPLER="echion")
    lines = [line for line in result.stderr.splitlines() if "PYROSPAN_SAMPLER" in line]
    assert lines == ["pyrospan-run: PYROSPAN_SAMPLER='echion': expected auto, stack or pyspy"], (
        result.stderr
    )


def linked_ms(receiver: RecordingReceiver, span_id: str, function: str) -> float:
    samples = receiver.samples_with_label("span_id", span_id)
    return sum(s.values[0] for s in samples if function in s.stack) / 1e6


def linked_at_least(span_id: str, function: str, ms: float) -> Callable[[RecordingReceiver], bool]:
    """A ``wait_for`` predicate: ``function`` has ``ms`` of CPU linked to ``span_id``."""
    return lambda r: linked_ms(r, span_id, function) >= ms


def run_case(receiver: RecordingReceiver, case: str, **env: str) -> tuple[str, str, str]:
    """Run one case; (span id, stdout, stderr) once its span's samples arrived."""
    env.setdefault("PYROSPAN_LOG_LEVEL", "info")
    result = run_ok(receiver, CASES, case, OTEL_SERVICE_NAME="cases", **env)
    span_id = result.stdout.split("span_id", 1)[1].split()[0]
    receiver.wait_for(lambda r: linked_ms(r, span_id, "burn_in_sampler_case") > 0, timeout=10)
    return span_id, result.stdout, result.stderr


def switch_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "moves to py-spy" in line]


def test_a_span_inside_a_task_keeps_the_stack_sampler(receiver: RecordingReceiver) -> None:
    span_id, _, err = run_case(receiver, "task", PYROSPAN_LOG_LEVEL="debug")
    assert switch_lines(err) == [], err
    assert "sampler Stack (auto:" in err
    assert linked_ms(receiver, span_id, "burn_in_sampler_case") >= 400


def test_a_root_span_opened_by_hand_on_a_thread_moves_auto_to_pyspy_and_is_labelled(
    receiver: RecordingReceiver,
) -> None:
    span_id, _, err = run_case(receiver, "thread")
    assert switch_lines(err) == [
        "pyrospan: profiles: root span 'by-hand' started on thread 'by-hand-worker' outside "
        "any request, task or thread-pool boundary, where no marker frame carries it; this "
        "process moves to py-spy, which labels it"
    ], err
    assert linked_ms(receiver, span_id, "burn_in_sampler_case") >= 400


def test_an_explicit_stack_sampler_says_what_it_cannot_label(receiver: RecordingReceiver) -> None:
    result = run_ok(receiver, CASES, "thread", PYROSPAN_SAMPLER="stack")
    lines = [line for line in result.stderr.splitlines() if "cannot label" in line]
    assert lines == [
        "pyrospan: profiles: root span 'by-hand' started on thread 'by-hand-worker' outside "
        "any request, task or thread-pool boundary, where no marker frame carries it, which "
        "the Stack sampler cannot label (PYROSPAN_SAMPLER=stack); set PYROSPAN_SAMPLER=auto "
        "or pyspy to profile it"
    ], result.stderr
    assert switch_lines(result.stderr) == []


def test_the_apps_own_thread_tags_move_auto_to_pyspy_which_reads_them(
    receiver: RecordingReceiver,
) -> None:
    span_id, _, err = run_case(receiver, "app-tags")
    assert len(switch_lines(err)) == 1 and "own thread tags" in err, err
    samples = receiver.samples_with_label("span_id", span_id)
    tagged = [s for s in samples if s.labels.get("tenant") == "acme"]
    assert sum(s.values[0] for s in tagged) / 1e6 >= 400, err


def test_a_thread_that_tags_itself_during_the_move_to_pyspy_keeps_its_tag(
    receiver: RecordingReceiver,
) -> None:
    result = run_ok(receiver, MOVE, "worker")
    assert result.stdout == "tagged during the move\ndone\n"
    assert result.stderr == ""

    def worker_ms(r: RecordingReceiver, *, tagged: bool = False) -> float:
        samples = [s for s in r.samples() if s.leaf == "burn_tagged_worker"]
        if tagged:
            samples = [s for s in samples if s.labels.get("worker") == "w1"]
        return sum(s.values[0] for s in samples) / 1e6

    assert receiver.wait_for(lambda r: worker_ms(r) >= 300, timeout=20), worker_ms(receiver)
    # All of it but the last samples, which py-spy's late tag lookup may find untagged.
    assert worker_ms(receiver, tagged=True) >= 0.9 * worker_ms(receiver), receiver.samples()


def test_tags_lost_in_a_move_to_pyspy_that_outlasts_the_wait_are_said_in_one_line(
    receiver: RecordingReceiver,
) -> None:
    result = run_ok(receiver, MOVE, "slow")
    assert result.stdout == "done\n"
    assert result.stderr.splitlines() == [
        "pyrospan: profiles: thread tags set while this process moved to py-spy were lost, and "
        "stay so until set again (the move took over 0.5 s); set PYROSPAN_SAMPLER=pyspy to "
        "start on py-spy"
    ]


@pytest.mark.parametrize(
    ("case", "said"),
    [
        ("sigprof", "the app sets its own SIGPROF handler"),
        ("faulthandler", "the app enables faulthandler after the profiler started"),
    ],
)
def test_an_app_taking_the_samplers_signals_moves_the_process_to_pyspy(
    receiver: RecordingReceiver, case: str, said: str
) -> None:
    # Even an explicit stack: the sampler would stop, or its timer reach the app.
    span_id, out, err = run_case(receiver, case, PYROSPAN_SAMPLER="stack")
    lines = switch_lines(err)
    assert len(lines) == 1 and said in lines[0], err
    assert "app SIGPROF handler ran" not in out
    assert linked_ms(receiver, span_id, "burn_in_sampler_case") >= 400


def test_samples_carry_the_process_pid_under_the_stack_sampler(
    receiver: RecordingReceiver,
) -> None:
    span_id, _, _ = run_case(receiver, "task")
    samples = receiver.samples_with_label("span_id", span_id)
    assert samples and all(s.labels.get("pid", "").isdigit() for s in samples)


def test_a_forked_child_runs_its_own_stack_sampler(receiver: RecordingReceiver) -> None:
    # The Stack sampler cannot start again in a fork of a process that ran it: the child
    # loads its own copy of pyroscope-io's native module.
    span_id, _, err = run_case(receiver, "fork", PYROSPAN_LOG_LEVEL="debug")
    restarted = [line for line in err.splitlines() if "profiler restarted" in line]
    assert len(restarted) == 1 and "(Stack (auto:" in restarted[0], err
    assert switch_lines(err) == [] and "py-spy samples" not in err
    samples = receiver.samples_with_label("span_id", span_id)
    assert {s.labels.get("pid") for s in samples} != {None}
    assert linked_ms(receiver, span_id, "burn_in_sampler_case") >= 400


@pytest.mark.parametrize(
    "case",
    [
        # Its task never awaits once the span is open: all of the span's CPU is in the
        # step that opened it.
        pytest.param("no-await", id="never-awaits"),
        # The step that opened the span began outside any span, so no marker of the span
        # runs around the rest of it; the task's later steps run inside the marker.
        pytest.param("opening-step", id="burns-before-awaiting"),
        # The same, in a step that began with an exception thrown into the task.
        pytest.param("after-throw", id="burns-after-a-throw"),
    ],
)
def test_cpu_a_task_burns_where_it_opens_its_span_is_labelled_from_its_second_task_on(
    receiver: RecordingReceiver, case: str
) -> None:
    # The first task of the function loses that CPU, and the function learns: the next
    # task's steps that begin outside any span run inside an opening marker, bound to the
    # span that opens there.  The Stack sampler stays, and nothing is said above debug.
    span_id, _, err = run_case(receiver, case, PYROSPAN_LOG_LEVEL="debug")
    assert switch_lines(err) == [] and "Stack sampler cannot label" not in err, err
    learned = [line for line in err.splitlines() if "run inside opening markers" in line]
    assert len(learned) == 1, err
    # 800 ms of 800 (never-awaits), else 600 of 600 of which 500 in the opening step.
    assert linked_ms(receiver, span_id, "burn_in_sampler_case") >= 500


def test_two_root_spans_opened_in_one_task_step_are_said_and_neither_takes_the_others_cpu(
    receiver: RecordingReceiver,
) -> None:
    # One opening marker can stand for one span: the second span in the step withdraws
    # it, so the first span's CPU is unlabelled rather than the second's labelled with
    # it.  The loss cannot be learned away, so it is said (once, Stack asked: a warning).
    result = run_ok(
        receiver, CASES, "two-in-step", OTEL_SERVICE_NAME="cases", PYROSPAN_SAMPLER="stack"
    )
    ids = result.stdout.split()
    second, first = ids[ids.index("span_id") + 1], ids[ids.index("other_id") + 1]
    receiver.wait_for(lambda r: linked_ms(r, second, "burn_in_sampler_case") > 0, timeout=10)
    lines = [line for line in result.stderr.splitlines() if "Stack sampler cannot label" in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pyrospan: profiles: root span 'two-1-b' burned "), lines
    assert lines[0].endswith(
        " ms of CPU in the asyncio task step that opened it, before the task's next await, "
        "where no marker frame carries it, which the Stack sampler cannot label "
        "(PYROSPAN_SAMPLER=stack); set PYROSPAN_SAMPLER=auto or pyspy to profile it"
    ), lines
    assert switch_lines(result.stderr) == []

    # The second task's: neither span's burn is labelled with the other (a push before the
    # second span opened may have carried some of the first's, rightly; what runs between
    # the first span's end and the second's start, the SDK making the second, is labelled
    # with the first, as the rest of any step in which a span ends is).
    def in_first(stack: tuple[str, ...]) -> bool:
        return any(frame.endswith("burn_first_of_two") for frame in stack)

    firsts = receiver.samples_with_label("span_id", first)
    burns = [s for s in firsts if "burn_in_sampler_case" in s.stack]
    assert [s.stack[-4:] for s in burns if not in_first(s.stack)] == []
    seconds = receiver.samples_with_label("span_id", second)
    assert [s.stack[-4:] for s in seconds if in_first(s.stack)] == []
    assert 50 <= linked_ms(receiver, second, "burn_in_sampler_case") <= 150


def serve_and_get(
    receiver: RecordingReceiver, service: str, command: list[str], path: str, times: int
) -> str:
    """Start a server (``{port}`` in ``command``), GET ``path`` ``times`` times; its stderr."""
    port = free_port()
    env = backend_env(receiver, OTEL_SERVICE_NAME=service, PYROSPAN_LOG_LEVEL="info")
    server = subprocess.Popen(
        [part.replace("{port}", str(port)) for part in command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}{path}"
    try:
        wait_for_http(url, server, timeout=60)
        for _ in range(times):
            with urllib.request.urlopen(url, timeout=30) as response:
                response.read()
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=30)
    return err


def test_an_asgi_request_that_burns_before_awaiting_keeps_the_stack_sampler(
    receiver: RecordingReceiver,
) -> None:
    # The middleware opens the span in a step that began outside any span too, but the
    # app then runs inside the span's async marker (asgi_frames): every sample is
    # labelled, and nothing is said.  /burst burns 100 ms in that step, then suspends.
    command = [PYROSPAN_RUN, sys.executable, "-m", "uvicorn", "--app-dir", str(PROGRAMS)]
    err = serve_and_get(
        receiver, "asgi", [*command, "--port", "{port}", "prefork_asgi:app"], "/burst", 2
    )
    assert switch_lines(err) == [] and "Stack sampler cannot label" not in err, err
    spans = [s for s in receiver.root_spans() if s.name.endswith("/burst")]
    assert len(spans) == 3, [s.name for s in receiver.root_spans()]  # wait_for_http's too
    for span in spans:
        assert receiver.wait_for(linked_at_least(span.span_id, "handle_work", 140), timeout=10), (
            linked_ms(receiver, span.span_id, "handle_work")
        )


@pytest.mark.otel  # the oldest instrumentation set has only the module's own middleware
def test_an_aiohttp_handler_that_burns_before_awaiting_is_labelled_from_the_first_request(
    receiver: RecordingReceiver,
) -> None:
    # aiohttp's handler runs in the task step that the server middleware opens the request
    # span in.  The middleware hands it on inside the span's marker (aiohttp_frames), so
    # the very first request (wait_for_http's) is labelled whole, before anything learned.
    program = [PYROSPAN_RUN, sys.executable, str(PROGRAMS / "aiohttp_service.py"), "{port}"]
    err = serve_and_get(receiver, "aio", program, "/work", 4)
    assert switch_lines(err) == [] and "Stack sampler cannot label" not in err, err
    # "GET /work"; the oldest instrumentation names the span by its path alone.
    spans = [s for s in receiver.root_spans() if s.name in ("GET /work", "/work")]
    assert len(spans) == 5, [s.name for s in receiver.root_spans()]  # wait_for_http's too
    for span in spans:
        assert receiver.wait_for(
            linked_at_least(span.span_id, "burn_before_await", 60), timeout=10
        ), linked_ms(receiver, span.span_id, "burn_before_await")
        assert linked_ms(receiver, span.span_id, "burn_after_await") >= 20


@pytest.mark.skipif(
    sys.version_info < (3, 12), reason="CPU timers, whose interval follows the rate, need 3.12+"
)
def test_the_sample_rate_holds_under_the_stack_sampler(receiver: RecordingReceiver) -> None:
    # The Stack sampler ticks every 10 ms unless told: at 10 Hz asked, each sample must
    # stand for about 100 ms of CPU, as py-spy's do.
    span_id, _, _ = run_case(receiver, "task", PYROSCOPE_SAMPLE_RATE="10")
    samples = receiver.samples_with_label("span_id", span_id)
    values = [s.values[0] for s in samples if "burn_in_sampler_case" in s.stack]
    assert sum(values) >= 400e6, values
    # A sample weighs the CPU its thread used since the last tick: a stack's aggregated
    # value is then a whole number of about 100 ms ticks (at 10 ms ticks, anything).
    ticks = [v / 100e6 for v in values if v >= 50e6]
    assert ticks and all(abs(t - round(t)) <= 0.06 for t in ticks), sorted(values)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="the wall-clock loop runs before 3.12")
def test_a_sample_rate_the_wall_clock_loop_cannot_keep_is_one_line(
    receiver: RecordingReceiver,
) -> None:
    result = run_ok(receiver, HOT_SPAN, "0.1", PYROSCOPE_SAMPLE_RATE="10")
    assert result.stderr.splitlines() == [
        "pyrospan: PYROSCOPE_SAMPLE_RATE=10: the Stack sampler's wall-clock loop (before "
        "CPython 3.12) keeps its own interval; set PYROSPAN_SAMPLER=pyspy for a fixed rate"
    ], result.stderr
