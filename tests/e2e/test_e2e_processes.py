"""End to end: every process of a program is profiled, traced and linked, and ends on time.

Real prefork servers (gunicorn's sync, gthread and uvicorn workers, with and without
--preload; uvicorn --workers), multiprocessing pools (fork, forkserver, spawn) and spawned
Python children run under pyrospan-run with the real SDK and profiler.  The receiver sees
what Pyroscope and an OTLP backend would: each span must carry its own process's
``process.pid`` and be linked to CPU samples labelled with the same ``pid``.  Shutdown
tests check that the last span batch and profile window arrive on exit and on signals,
and that a dead or silent backend cannot hold the process past the 1 s bound.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import (
    PROGRAMS,
    PYROSPAN_RUN,
    backend_env,
    clean_env,
    free_port,
    run,
    start_server,
    stop,
    wait_for_http,
)
from recording_receiver import RecordingReceiver

from pyrospan_launch.launcher.child_env import bootstrap_dir
from pyrospan_launch.receiver.records import ReceivedSpan

pytestmark = pytest.mark.e2e

PY = sys.executable
BIN = os.path.dirname(PY)

# Nothing is sent on a timer during a run with these: what arrives was sent at the end.
# What the servers print for a worker that crashed: uWSGI's "... got Segmentation Fault
# !!!", gunicorn's "Worker (pid:...) was sent SIGSEGV!", CPython's fatal errors.
CRASH_MARKERS = ("Segmentation Fault", "SIGSEGV", "SIGBUS", "Fatal Python error")


SEND_ONLY_AT_EXIT = {"PYROSCOPE_UPLOAD_INTERVAL": "60", "OTEL_BSP_SCHEDULE_DELAY": "60000"}

# Worker programs burn 300 ms of thread CPU per span.  With two or three busy workers and
# their samplers on two cores, pyroscope-io's 100 Hz sampler both misses ticks and counts
# runnable-but-waiting time, so one span's linked CPU ranged 140-510 ms over 160 spans
# (30-230 ms at the 120 ms of work used before, which once fell under a 40 ms bound in CI).
# A fifth of the work is the bound: any real loss of linking shows far below it.
# benchmarks/sample_spread/run.py measures the spread.
WORKER_MIN_LINKED_MS = 60


def linked_cpu_ms(receiver: RecordingReceiver, span: ReceivedSpan, function: str) -> float:
    """CPU ms of samples labelled with the span's id and its process's pid, in ``function``."""
    pid = str(span.resource.get("process.pid"))
    return (
        sum(
            s.values[0]
            for s in receiver.samples_with_label("span_id", span.span_id)
            if s.labels.get("pid") == pid and function in s.stack
        )
        / 1e6
    )


def assert_linked_in_own_process(
    receiver: RecordingReceiver,
    spans: list[ReceivedSpan],
    function: str,
    min_ms: float,
    timeout: float,
) -> None:
    """Each span has its profile id, and CPU samples of ``function`` from its own process."""
    for span in spans:
        assert span.attributes.get("pyroscope.profile.id") == span.span_id
    assert receiver.wait_for(
        lambda r: all(linked_cpu_ms(r, s, function) >= min_ms for s in spans), timeout=timeout
    ), "spans short of {} ms (span id: (pid, linked ms)): {}".format(
        min_ms,
        {
            s.span_id: (s.resource.get("process.pid"), linked_cpu_ms(receiver, s, function))
            for s in spans
            if linked_cpu_ms(receiver, s, function) < min_ms
        },
    )
    for span in spans:
        # Samples of the span carry only its own process's pid, never another worker's.
        pids = {s.labels.get("pid") for s in receiver.samples_with_label("span_id", span.span_id)}
        assert pids == {str(span.resource["process.pid"])}


def get_pid(url: str) -> int:
    with urllib.request.urlopen(url, timeout=30) as response:
        return int(json.loads(response.read())["pid"])


def reach_every_worker(url: str, workers: int) -> set[int]:
    """Send concurrent requests until ``workers`` different pids answered (or 40 requests)."""
    pids: set[int] = set()
    with ThreadPoolExecutor(workers) as pool:
        for _ in range(40 // workers):
            pids.update(pool.map(lambda _: get_pid(url), range(workers)))
            if len(pids) >= workers:
                break
    return pids


def work_spans(receiver: RecordingReceiver) -> list[ReceivedSpan]:
    return [s for s in receiver.root_spans() if "/work" in s.name and s.kind == 2]


SERVERS = [
    pytest.param(
        [f"{BIN}/gunicorn", "-w", "3", "-k", "sync", "--preload"],
        "prefork_wsgi:app",
        3,
        id="gunicorn-sync-preload-3-workers",
    ),
    pytest.param(
        [f"{BIN}/gunicorn", "-w", "2", "-k", "gthread", "--threads", "2"],
        "prefork_wsgi:app",
        2,
        id="gunicorn-gthread-2-workers",
    ),
    pytest.param(
        [f"{BIN}/gunicorn", "-w", "2", "-k", "uvicorn.workers.UvicornWorker", "--preload"],
        "prefork_asgi:app",
        2,
        id="gunicorn-uvicorn-worker-preload-2-workers",
    ),
    pytest.param(
        [PY, "-m", "uvicorn", "--workers", "2"],
        "prefork_asgi:app",
        2,
        id="uvicorn-2-workers",
    ),
    pytest.param(
        # The reloader spawns the server process: the spans must come from that one.
        [PY, "-m", "uvicorn", "--reload", "--reload-dir", str(PROGRAMS)],
        "prefork_asgi:app",
        1,
        id="uvicorn-reload",
    ),
]


def server_command(server: list[str], app: str, port: int) -> list[str]:
    if server[1:3] == ["-m", "uvicorn"]:
        return [
            *server,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--app-dir",
            str(PROGRAMS),
            app,
        ]
    return [*server, "-b", f"127.0.0.1:{port}", "--chdir", str(PROGRAMS), app]


@pytest.mark.parametrize(("server", "app", "workers"), SERVERS)
def test_every_worker_traced_and_linked_with_its_own_pid(
    receiver: RecordingReceiver, server: list[str], app: str, workers: int
) -> None:
    port = free_port()
    env = backend_env(receiver, OTEL_SERVICE_NAME="web")
    process = start_server([PYROSPAN_RUN, *server_command(server, app, port)], env)
    try:
        url = f"http://127.0.0.1:{port}/work"
        wait_for_http(url, process)
        pids = reach_every_worker(url, workers)
        assert len(pids) == workers, f"requests reached only {pids}"
        assert receiver.wait_for(
            lambda r: {s.resource.get("process.pid") for s in work_spans(r)} >= pids, timeout=20
        ), {s.resource.get("process.pid") for s in work_spans(receiver)}
        assert_linked_in_own_process(
            receiver, work_spans(receiver), "handle_work", WORKER_MIN_LINKED_MS, 20
        )
    finally:
        _, err = stop(process)
    assert process.pid not in {s.resource.get("process.pid") for s in work_spans(receiver)}
    assert "Traceback" not in err, err
    assert not [m for m in CRASH_MARKERS if m in err], err  # a crashed worker


def test_prefork_server_stopped_by_sigterm_sends_every_workers_last_data(
    receiver: RecordingReceiver,
) -> None:
    # docker stop: SIGTERM to gunicorn, which stops its workers; each sends what it holds.
    port = free_port()
    env = backend_env(receiver, OTEL_SERVICE_NAME="web")
    env.update(SEND_ONLY_AT_EXIT)
    command = server_command([f"{BIN}/gunicorn", "-w", "2", "-k", "sync"], "prefork_wsgi:app", port)
    process = start_server([PYROSPAN_RUN, *command], env)
    try:
        url = f"http://127.0.0.1:{port}/work"
        wait_for_http(url, process)
        pids = reach_every_worker(url, 2)
        assert len(pids) == 2
        time.sleep(0.3)
        assert work_spans(receiver) == [] and receiver.samples() == []
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0 and not [m for m in CRASH_MARKERS if m in err], err
    spans = work_spans(receiver)
    assert {s.resource.get("process.pid") for s in spans} == pids
    assert_linked_in_own_process(receiver, spans, "handle_work", WORKER_MIN_LINKED_MS, timeout=5)


def test_multiprocessing_pool_workers_traced_linked_and_flushed(
    receiver: RecordingReceiver,
) -> None:
    # Pool workers leave through os._exit (close) or die of SIGTERM (terminate); data is
    # sent only at their end here, so each path must flush.
    env = backend_env(receiver)
    env.update(SEND_ONLY_AT_EXIT)
    specs = ["fork:terminate", "fork:join", "forkserver:join", "spawn:terminate"]
    result = run([PYROSPAN_RUN, PY, str(PROGRAMS / "mp_pools.py"), *specs], env, timeout=90)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    tasks = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted({t["method"] for t in tasks}) == ["fork", "forkserver", "spawn"]
    assert len(tasks) == 16
    by_id = {s.span_id: s for s in receiver.spans}
    assert all(t["span_id"] in by_id for t in tasks), "a pool worker's spans were lost"
    for task in tasks:
        assert by_id[task["span_id"]].resource["process.pid"] == task["pid"]
    assert_linked_in_own_process(
        receiver,
        [by_id[t["span_id"]] for t in tasks],
        "pool_task_work",
        WORKER_MIN_LINKED_MS,
        timeout=5,
    )


def test_celery_prefork_workers_traced_linked_and_flushed(
    receiver: RecordingReceiver, tmp_path: Path
) -> None:
    # Celery's pool processes end through os._exit without atexit; data is sent only at
    # their end here (warm shutdown on SIGTERM), so that path must flush.
    for folder in ("queue", "processed", "results"):
        (tmp_path / folder).mkdir()
    env = backend_env(receiver, BROKER_DIR=str(tmp_path), OTEL_SERVICE_NAME="tasks")
    env.update(SEND_ONLY_AT_EXIT)
    celery = [f"{BIN}/celery", "--workdir", str(PROGRAMS), "-A", "celery_tasks", "worker"]
    options = ["--pool", "prefork", "-c", "2", "--without-heartbeat", "--without-gossip"]
    worker = start_server(
        [PYROSPAN_RUN, *celery, *options, "--without-mingle", "--loglevel", "WARNING"], env
    )
    try:
        sent = run(
            [PY, str(PROGRAMS / "celery_tasks.py"), "6"], clean_env(BROKER_DIR=str(tmp_path))
        )
        assert sent.returncode == 0, sent.stderr
        pids = {int(pid) for pid in sent.stdout.split()}
        assert receiver.spans == []
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    runs = [s for s in receiver.spans if s.name == "run/celery_tasks.crunch"]
    assert len(runs) == 6
    assert {s.resource["process.pid"] for s in runs} == pids
    assert worker.pid not in pids
    assert_linked_in_own_process(
        receiver, runs, "celery_task_work", WORKER_MIN_LINKED_MS, timeout=5
    )


@pytest.mark.parametrize(
    ("mode", "sent", "status"),
    [
        pytest.param("wait", signal.SIGTERM, -signal.SIGTERM, id="sigterm-default-action"),
        pytest.param("wait", signal.SIGINT, -signal.SIGINT, id="sigint-keyboard-interrupt"),
        pytest.param("own-handler", signal.SIGTERM, 0, id="sigterm-app-handler"),
    ],
)
def test_signal_sends_last_span_batch_and_profile_window(
    receiver: RecordingReceiver,
    mode: str,
    sent: signal.Signals,
    status: int,
    default_dispositions: None,
) -> None:
    env = backend_env(receiver)
    env.update(SEND_ONLY_AT_EXIT)
    process = start_server([PYROSPAN_RUN, PY, str(PROGRAMS / "last_words.py"), mode, "0.4"], env)
    assert process.stdout is not None
    span_id = process.stdout.readline().split()[1]
    assert process.stdout.readline().strip() == "ready"
    # A root span outside any request moves `auto` from the Stack sampler to py-spy, which
    # sends the Stack sampler's window then: the span's own samples wait for the exit.
    assert receiver.spans == [] and receiver.samples_with_label("span_id", span_id) == []
    signalled = time.monotonic()
    process.send_signal(sent)
    out, err = process.communicate(timeout=30)
    ended = time.monotonic() - signalled
    # The app's own ending: its status, its handler, its traceback.
    assert process.returncode == status, err
    assert ("app handler ran" in out) == (mode == "own-handler")
    assert ("KeyboardInterrupt" in err) == (sent == signal.SIGINT)
    assert ended < 1.0
    (span,) = [s for s in receiver.spans if s.span_id == span_id]
    assert span.resource["process.pid"] == process.pid
    assert_linked_in_own_process(receiver, [span], "last_words_work", 200, timeout=5)


SIGTERM_RUNS = 12


def test_sigterm_ends_a_program_at_once_whatever_it_was_doing(receiver: RecordingReceiver) -> None:
    # Without pyrospan-run SIGTERM kills at once.  With it, a Python handler sends the last
    # data first, and on Python 3.14 a signal arriving as print() ends waits for the sleep
    # that follows (a quarter to half of such runs measured) unless the signal watch wakes
    # the main thread.  Several runs, so a missed wake-up shows.
    env = backend_env(receiver, PYROSPAN_PROFILING="false", PYROSPAN_LOG_LEVEL="debug")
    for _ in range(SIGTERM_RUNS):
        process = start_server([PYROSPAN_RUN, PY, str(PROGRAMS / "prints_then_sleeps.py")], env)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            _, err = process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
            pytest.fail(f"still running 5 s after SIGTERM:\n{err}")
        assert process.returncode == -signal.SIGTERM, err
        assert time.monotonic() - signalled < 2.0
        assert "SIGTERM: the last data is sent before the default action" in err


@pytest.fixture
def silent_backend() -> Iterator[str]:
    """An address on 127.0.0.1 that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # the kernel completes handshakes; nothing ever reads
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.mark.parametrize("backend", ["dead", "silent"])
def test_unreachable_backend_holds_exit_less_than_one_second(
    backend: str, silent_backend: str
) -> None:
    url = silent_backend if backend == "silent" else f"http://127.0.0.1:{free_port()}"
    env = clean_env(PYROSCOPE_SERVER_ADDRESS=url, OTEL_EXPORTER_OTLP_ENDPOINT=url)
    result = run([PYROSPAN_RUN, PY, str(PROGRAMS / "last_words.py"), "exit", "7"], env)
    ended = time.monotonic()
    assert result.returncode == 7, result.stderr
    (app_done,) = [
        float(line.split()[1]) for line in result.stdout.splitlines() if "appdone" in line
    ]
    # Without the exit deadline: 6 to 8 s (refused: the exporter retries) and 20 s (silent).
    assert ended - app_done < 1.0
    # Nothing lost without a word: a refusing backend is named as it refuses, one that
    # never answers when the exit gives up on it.
    said = [line for line in result.stderr.splitlines() if line.startswith("pyrospan: spans")]
    if backend == "dead":
        assert said == [
            "pyrospan: spans not sent: connection refused; reported again at most once "
            "every 60 s while it lasts"
        ]
    else:
        assert said == [
            "pyrospan: spans not confirmed at exit: the OTLP endpoint did not answer within "
            "0.5 s, so the last spans may be lost; raise PYROSPAN_EXIT_TIMEOUT, or point "
            "OTEL_EXPORTER_OTLP_ENDPOINT at a collector near the app"
        ]


def test_a_longer_exit_deadline_is_waited_for_and_named(silent_backend: str) -> None:
    # A short job sending to a distant backend asks for more time: the process waits that
    # long for a backend that never answers, no longer, and names the time it waited.
    env = clean_env(
        PYROSCOPE_SERVER_ADDRESS=silent_backend,
        OTEL_EXPORTER_OTLP_ENDPOINT=silent_backend,
        PYROSPAN_EXIT_TIMEOUT="2s",
    )
    result = run([PYROSPAN_RUN, PY, str(PROGRAMS / "last_words.py"), "exit", "7"], env)
    ended = time.monotonic()
    assert result.returncode == 7, result.stderr
    (app_done,) = [
        float(line.split()[1]) for line in result.stdout.splitlines() if "appdone" in line
    ]
    assert 1.9 < ended - app_done < 3.0
    assert (
        "pyrospan: spans not confirmed at exit: the OTLP endpoint did not answer within 2 "
        "s, so the last spans may be lost; raise PYROSPAN_EXIT_TIMEOUT, or point "
        "OTEL_EXPORTER_OTLP_ENDPOINT at a collector near the app"
    ) in result.stderr.splitlines()


@pytest.mark.parametrize("deadline", ["default", "3s"])
def test_a_longer_exit_deadline_sends_what_a_slow_backend_takes(
    receiver: RecordingReceiver, deadline: str
) -> None:
    # The backend takes the spans but answers 1 s later, as a distant one may.  The default
    # deadline gives up on the last batch and says so; PYROSPAN_EXIT_TIMEOUT=3s waits for
    # the answer, and the process ends as soon as it comes.
    receiver.on_spans.insert(0, lambda spans: time.sleep(1.0))
    env = backend_env(receiver)
    if deadline != "default":
        env["PYROSPAN_EXIT_TIMEOUT"] = deadline
    result = run([PYROSPAN_RUN, PY, str(PROGRAMS / "last_words.py"), "exit", "7"], env)
    ended = time.monotonic()
    assert result.returncode == 7, result.stderr
    (app_done,) = [
        float(line.split()[1]) for line in result.stdout.splitlines() if "appdone" in line
    ]
    said = [line for line in result.stderr.splitlines() if "spans not confirmed" in line]
    if deadline == "default":
        assert ended - app_done < 1.0
        assert len(said) == 1 and "within 0.5 s" in said[0], result.stderr
    else:
        assert 0.9 < ended - app_done < 2.9, result.stderr
        assert said == [], result.stderr


def test_spawned_python_child_instrumented_with_its_own_identity(
    receiver: RecordingReceiver,
) -> None:
    env = backend_env(receiver)
    result = run([PYROSPAN_RUN, PY, str(PROGRAMS / "starts_child.py")], env)
    assert result.returncode == 0, result.stderr
    child = json.loads(result.stdout.split("child ", 1)[1])
    assert child["bootstrapped"] is True
    assert receiver.wait_for(lambda r: any(s.span_id == child["span_id"] for s in r.spans), 20)
    (span,) = [s for s in receiver.spans if s.span_id == child["span_id"]]
    assert span.resource["process.pid"] == child["pid"]
    assert span.resource["process.parent_pid"] != child["pid"]
    assert_linked_in_own_process(receiver, [span], "child_work", 100, timeout=20)


def test_children_off_runs_spawned_python_untouched(receiver: RecordingReceiver) -> None:
    env = backend_env(receiver, PYROSPAN_CHILDREN="false", PYTHONPATH="/opt/user-lib")
    result = run([PYROSPAN_RUN, PY, str(PROGRAMS / "starts_child.py")], env)
    assert result.returncode == 0, result.stderr
    child = json.loads(result.stdout.split("child ", 1)[1])
    assert child["bootstrapped"] is False
    assert child["pythonpath"] == "/opt/user-lib"
    assert bootstrap_dir() not in (child["pythonpath"] or "")
    assert child["span_id"] == "0" * 16  # no SDK in the child: a non-recording span
    parent_span_id = result.stdout.split()[1]
    # The program itself is still traced.
    assert receiver.wait_for(lambda r: any(s.span_id == parent_span_id for s in r.spans), 20)


def test_children_off_with_no_user_pythonpath_unsets_it(receiver: RecordingReceiver) -> None:
    env = backend_env(receiver, PYROSPAN_CHILDREN="false")
    result = run([PYROSPAN_RUN, PY, str(PROGRAMS / "starts_child.py")], env)
    assert result.returncode == 0, result.stderr
    child = json.loads(result.stdout.split("child ", 1)[1])
    assert child["bootstrapped"] is False
    assert child["pythonpath"] is None


FORK_WARNING = "use of fork() may lead to deadlocks"


@pytest.mark.parametrize("log_level", ["warning", "debug"])
def test_profiler_threads_make_no_fork_warning_unless_debugging(
    receiver: RecordingReceiver, log_level: str
) -> None:
    env = backend_env(receiver, PYROSPAN_LOG_LEVEL=log_level)
    command = [
        PYROSPAN_RUN,
        PY,
        "-W",
        "always::DeprecationWarning",
        str(PROGRAMS / "forks_quietly.py"),
    ]
    result = run(command, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "forked 0"
    # Debugging shows what was silenced: pyroscope-io's warning, at each of the two forks.
    expected = 2 if log_level == "debug" else 0
    assert result.stderr.count("is running Pyroscope, " + FORK_WARNING) == expected, result.stderr
    if sys.version_info >= (3, 12):
        assert result.stderr.count("is multi-threaded, " + FORK_WARNING) == expected


def test_fork_warning_about_the_apps_own_thread_still_shows(receiver: RecordingReceiver) -> None:
    env = backend_env(receiver)
    command = [
        PYROSPAN_RUN,
        PY,
        "-W",
        "always::DeprecationWarning",
        str(PROGRAMS / "forks_quietly.py"),
        "own-thread",
    ]
    result = run(command, env)
    assert result.returncode == 0, result.stderr
    # CPython warns about an app's own threads at fork from 3.12 on: that warning is the
    # app's and stays; before 3.12 there is none, and pyrospan-run adds none either.
    expected = 2 if sys.version_info >= (3, 12) else 0
    assert result.stderr.count("is multi-threaded, " + FORK_WARNING) == expected, result.stderr
    assert "is running Pyroscope" not in result.stderr


def test_exit_code_and_output_unchanged_by_forked_children(receiver: RecordingReceiver) -> None:
    # Exit handling in the parent and the forked child leaves both statuses and the output alone.
    env = backend_env(receiver)
    code = (
        "import os, sys\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os._exit(5)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print(os.waitstatus_to_exitcode(status))\n"
        "sys.exit(3)\n"
    )
    result = run([PYROSPAN_RUN, PY, "-c", code], env)
    assert (result.returncode, result.stdout, result.stderr) == (3, "5\n", "")


@pytest.mark.parametrize("process", ["started", "forked"])
def test_signals_sent_to_the_process_reach_the_apps_threads_only(
    receiver: RecordingReceiver, process: str
) -> None:
    # The kernel hands a signal sent to the process to any thread that does not block it.
    # One that lands on a thread of ours leaves the main thread asleep in its blocking call
    # (Ctrl-C waits out a time.sleep): every thread pyrospan-run adds, its own, pyroscope-io's
    # native ones and the SDK's exporters, blocks the signals apps handle.  In a forked
    # child too, where the SDK starts its exporter's thread again from its at-fork hook.
    fork = ["--fork"] if process == "forked" else []
    result = run(
        [PYROSPAN_RUN, PY, str(PROGRAMS / "thread_masks.py"), *fork], backend_env(receiver)
    )
    assert result.returncode == 0, result.stderr
    threads = json.loads(result.stdout.splitlines()[-1])
    (main,) = [t for t in threads if t["main"]]
    (app_thread,) = [t for t in threads if t["name"] == "app-own-thread"]
    ours = [t for t in threads if not t["main"] and t["name"] != "app-own-thread"]
    assert main["blocked"] == [] and app_thread["blocked"] == []  # the app's are left alone
    names = {t["name"] for t in ours}
    assert {"pyrospan-relay", "pyrospan-relay-forward"} <= names, names
    assert any(name.startswith("OtelBatchSpan") for name in names), names
    assert len(ours) >= 5, names  # pyroscope-io's native threads are in it
    open_to_signals = [t for t in ours if t["blocked"] != ["SIGINT", "SIGTERM"]]
    assert open_to_signals == [], open_to_signals
