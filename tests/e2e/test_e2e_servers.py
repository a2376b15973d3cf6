"""End to end: production servers under pyrospan-run, each with its usual command line.

uWSGI (built from source by pip), gunicorn's gevent worker, granian (ASGI and WSGI),
hypercorn, daphne, a plain gevent app and an eventlet app, and celery's threads and
gevent pools, with the real SDK and profiler.  Each server runs two workers where it has
workers; real HTTP requests reach every worker; the server is stopped with SIGTERM, as
``docker stop`` does.  Nothing is sent on a timer during the run, so what the receiver
decodes was sent by each process's exit flush: every request span, with CPU samples of
the handler's function labelled with that span's id and the pid of the worker that ran
it; the server ends within a second of its own stop time and with its own status.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import PROGRAMS, PYROSPAN_RUN, backend_env, clean_env, free_port, run, wait_for_http
from recording_receiver import RecordingReceiver
from test_e2e_processes import (
    CRASH_MARKERS,
    SEND_ONLY_AT_EXIT,
    WORKER_MIN_LINKED_MS,
    assert_linked_in_own_process,
    get_pid,
    work_spans,
)

from pyrospan_launch.receiver.records import ReceivedSpan

pytestmark = pytest.mark.e2e

PY = sys.executable
BIN = os.path.dirname(PY)
REQUESTS = 12


def uwsgi(*options: str) -> list[str]:
    return [
        f"{BIN}/uwsgi", "--master", "--processes", "2", *options, "--die-on-term",
        "--http-socket", "127.0.0.1:{port}", "--chdir", str(PROGRAMS),
        "--wsgi-file", "prefork_wsgi.py", "--callable", "app", "--disable-logging",
    ]  # fmt: skip


def gunicorn_gevent() -> list[str]:
    return [
        f"{BIN}/gunicorn", "-w", "2", "-k", "gevent", "-b", "127.0.0.1:{port}",
        "--chdir", str(PROGRAMS), "prefork_wsgi:app",
    ]  # fmt: skip


def granian(interface: str, app: str) -> list[str]:
    return [
        f"{BIN}/granian", "--interface", interface, "--workers", "2", "--host", "127.0.0.1",
        "--port", "{port}", "--working-dir", str(PROGRAMS), app,
    ]  # fmt: skip


# (command, workers, seconds the server itself takes to stop on SIGTERM, with a margin
# for a busy 2-core machine: alone, daphne and granian stop in 0.2-0.4 s, gunicorn's gevent
# worker and hypercorn in 1.1-1.4 s).  uWSGI's master reaps its workers once a second: a
# worker that ends after 1.0 s is buried at 2 s, with or without pyrospan-run.
SERVERS = [
    pytest.param(uwsgi(), 2, 2.0, id="uwsgi-master-2-processes"),
    pytest.param(uwsgi("--enable-threads"), 2, 2.0, id="uwsgi-enable-threads"),
    pytest.param(uwsgi("--lazy-apps"), 2, 2.0, id="uwsgi-lazy-apps"),
    pytest.param(uwsgi("--threads", "2"), 2, 2.0, id="uwsgi-threads-2"),
    pytest.param(uwsgi("--gevent", "10"), 2, 2.0, id="uwsgi-gevent"),
    pytest.param(gunicorn_gevent(), 2, 2.0, id="gunicorn-gevent-2-workers"),
    pytest.param(granian("asgi", "prefork_asgi:app"), 2, 1.5, id="granian-asgi-2-workers"),
    pytest.param(granian("wsgi", "prefork_wsgi:app"), 2, 1.5, id="granian-wsgi-2-workers"),
    pytest.param(
        [f"{BIN}/hypercorn", "-w", "2", "-b", "127.0.0.1:{port}", "prefork_asgi:app"],
        2,
        2.0,
        id="hypercorn-2-workers",
    ),
    pytest.param(
        [f"{BIN}/daphne", "-b", "127.0.0.1", "-p", "{port}", "prefork_asgi:app"],
        1,
        1.5,
        id="daphne",
    ),
]


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """The server in a session of its own, so a failed test can stop all its processes."""
    return subprocess.Popen(
        command,
        env=env,
        cwd=PROGRAMS,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def start_uwsgi(
    receiver: RecordingReceiver,
    cleanup: list[subprocess.Popen[str]],
    *options: str,
    **variables: str,
) -> tuple[subprocess.Popen[str], str]:
    """uWSGI under pyrospan-run with ``options``, data sent only at exit; its /work URL."""
    port = free_port()
    env = backend_env(receiver, OTEL_SERVICE_NAME="web", **variables)
    env.update(SEND_ONLY_AT_EXIT)
    process = start([PYROSPAN_RUN, *(a.format(port=port) for a in uwsgi(*options))], env)
    cleanup.append(process)
    url = f"http://127.0.0.1:{port}/work"
    wait_for_http(url, process, timeout=60)
    return process, url


def crashes(err: str) -> list[str]:
    """What the server said of a crashed process: a worker's crash leaves its exit code 0."""
    return [marker for marker in CRASH_MARKERS if marker in err]


def requests_reaching(url: str, workers: int) -> set[int]:
    """``REQUESTS`` requests, six at a time, more until ``workers`` pids answered (48 at most)."""
    pids: set[int] = set()
    sent = 0
    with ThreadPoolExecutor(6) as pool:
        while sent < REQUESTS or (len(pids) < workers and sent < 48):
            pids.update(pool.map(lambda _: get_pid(url), range(6)))
            sent += 6
    return pids


def stop_with_sigterm(process: subprocess.Popen[str]) -> tuple[float, str]:
    """SIGTERM to the server; seconds until it ended, and its stderr."""
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, err = process.communicate()
        raise AssertionError(f"the server did not end on SIGTERM:\n{err}") from None
    return time.monotonic() - signalled, err


@pytest.fixture
def cleanup() -> Iterator[list[subprocess.Popen[str]]]:
    """Servers started by the test; any left running at its end are killed with their group."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()


@pytest.mark.parametrize(("server", "workers", "own_stop"), SERVERS)
def test_server_workers_linked_under_their_pid_and_flushed_on_sigterm(
    receiver: RecordingReceiver,
    cleanup: list[subprocess.Popen[str]],
    server: list[str],
    workers: int,
    own_stop: float,
) -> None:
    port = free_port()
    env = backend_env(receiver, OTEL_SERVICE_NAME="web")
    env.update(SEND_ONLY_AT_EXIT)
    process = start([PYROSPAN_RUN, *(a.format(port=port) for a in server)], env)
    cleanup.append(process)
    url = f"http://127.0.0.1:{port}/work"
    wait_for_http(url, process, timeout=60)
    pids = requests_reaching(url, workers)
    assert len(pids) == workers, f"requests reached only {pids}"
    time.sleep(0.3)
    assert work_spans(receiver) == [] and receiver.samples() == [], "sent before the exit"
    ended, err = stop_with_sigterm(process)
    assert process.returncode == 0, err
    assert ended < own_stop + 1.0, f"{ended:.2f} s to stop"
    assert "Traceback" not in err and "pyrospan: " not in err, err
    # A crashed worker does not change the master's exit code: its server says so.
    assert not crashes(err), err
    spans = work_spans(receiver)
    assert len(spans) >= REQUESTS
    assert {int(str(s.resource["process.pid"])) for s in spans} == pids
    assert_linked_in_own_process(receiver, spans, "handle_work", WORKER_MIN_LINKED_MS, timeout=5)


def test_uwsgi_started_by_a_shell_names_the_flag_its_workers_need(
    receiver: RecordingReceiver, cleanup: list[subprocess.Popen[str]]
) -> None:
    # Started through a shell, uWSGI is not the launcher's command: it forks without
    # Python's fork hooks, which the workers still run, and one line names the flag.
    port = free_port()
    env = backend_env(receiver, OTEL_SERVICE_NAME="web")
    shell = " ".join(uwsgi()).format(port=port)
    process = start([PYROSPAN_RUN, "sh", "-c", f"exec {shell}"], env)
    cleanup.append(process)
    url = f"http://127.0.0.1:{port}/work"
    wait_for_http(url, process, timeout=60)
    pids = requests_reaching(url, 2)
    assert len(pids) == 2
    assert receiver.wait_for(lambda r: len(work_spans(r)) >= REQUESTS, timeout=20)
    _, err = stop_with_sigterm(process)
    assert process.returncode == 0, err
    lines = [line for line in err.splitlines() if line.startswith("pyrospan: ")]
    assert len(lines) == 1 and "add --py-call-uwsgi-fork-hooks" in lines[0], err
    assert_linked_in_own_process(
        receiver, work_spans(receiver), "handle_work", WORKER_MIN_LINKED_MS, timeout=5
    )


UWSGI_MODES = {"processes": (), "threads": ("--threads", "2"), "lazy-apps": ("--lazy-apps",)}


@pytest.mark.parametrize("mode", list(UWSGI_MODES))
def test_uwsgi_workers_run_the_stack_sampler_and_end_without_a_crash(
    receiver: RecordingReceiver, cleanup: list[subprocess.Popen[str]], mode: str
) -> None:
    # uWSGI ends a worker through exit() from its signal handler: without the exit guard
    # the Stack sampler read freed memory there, and the worker died of SIGSEGV with its
    # spans.  With --lazy-apps each worker finalizes Python before the guard runs, which
    # must then be gone.  Request threads block the CPU timers' signal: py-spy samples
    # those workers.
    process, url = start_uwsgi(receiver, cleanup, *UWSGI_MODES[mode], PYROSPAN_LOG_LEVEL="debug")
    pids = requests_reaching(url, 2)
    assert len(pids) == 2
    _, err = stop_with_sigterm(process)
    assert process.returncode == 0 and not crashes(err), err
    # The master never finalizes Python (uWSGI runs no atexit hooks there): the guard stops
    # its sampler before exit() destroys the native module, and sends its last window: the
    # app's import, hundreds of milliseconds of CPU (with --lazy-apps the workers import it,
    # and the master's window may hold no sample).
    master = str(process.pid)
    assert f"pyrospan[debug pid={master}]: exit: profiles" in err, err
    if mode != "lazy-apps":
        assert receiver.wait_for(
            lambda r: any(s.labels.get("pid") == master for s in r.samples()), timeout=5
        ), "no sample of the master"
    restarted = [line for line in err.splitlines() if "profiler restarted" in line]
    moved = [line for line in err.splitlines() if "py-spy samples this worker" in line]
    if mode == "threads" and sys.version_info >= (3, 12):
        assert len(restarted) == 2 and all(
            "(py-spy (auto: uWSGI's 2 request" in x for x in restarted
        )
        assert len(moved) == 2, err
    else:
        assert len(restarted) == 2 and all("(Stack (auto:" in line for line in restarted), err
        assert moved == [], err
    spans = work_spans(receiver)
    assert len(spans) >= REQUESTS
    assert {int(str(s.resource["process.pid"])) for s in spans} == pids
    assert_linked_in_own_process(receiver, spans, "handle_work", WORKER_MIN_LINKED_MS, timeout=5)


def test_uwsgi_with_mules_runs_them_and_says_the_fork_hooks_are_off(
    receiver: RecordingReceiver, cleanup: list[subprocess.Popen[str]]
) -> None:
    # uWSGI 2.0 forks mules without the GIL under --py-call-uwsgi-fork-hooks, and each
    # crashed in its first Python call, respawned for ever: with mules pyrospan-run leaves
    # the flag off, the workers run the fork hooks themselves, and one line says why.
    process, url = start_uwsgi(receiver, cleanup, "--mules", "1")
    pids = requests_reaching(url, 2)
    assert len(pids) == 2
    time.sleep(1.0)  # a mule that crashes is respawned within this
    _, err = stop_with_sigterm(process)
    assert process.returncode == 0 and not crashes(err), err
    assert err.count("spawned uWSGI mule 1") == 1, err
    lines = [line for line in err.splitlines() if line.startswith("pyrospan: ")]
    assert len(lines) == 1 and "as its mules crash under --py-call-uwsgi-fork-hooks" in lines[0]
    spans = work_spans(receiver)
    assert {int(str(s.resource["process.pid"])) for s in spans} == pids
    assert_linked_in_own_process(receiver, spans, "handle_work", WORKER_MIN_LINKED_MS, timeout=5)


def test_uwsgi_workers_recycled_by_max_requests_send_their_spans_and_profiles(
    receiver: RecordingReceiver, cleanup: list[subprocess.Popen[str]]
) -> None:
    # Each worker ends after two requests and the master forks another: every one of them
    # removes the exit guard it inherited from the master, arms its own, and sends its
    # spans and samples as it goes, without a crash.
    # uWSGI's own race: a master told to stop while it sleeps before a respawn ("worker
    # respawning too fast") forks the worker after signalling the others, and waits for
    # it; the mercy (60 s by default) then bounds that wait (seen once in 35 loaded runs).
    options = (
        "--max-requests", "2", "--min-worker-lifetime", "1",
        "--reload-mercy", "10", "--worker-reload-mercy", "10",
    )  # fmt: skip
    process, url = start_uwsgi(receiver, cleanup, *options, PYROSPAN_LOG_LEVEL="info")
    time.sleep(1.1)  # uWSGI recycles no worker younger than --min-worker-lifetime
    pids = {get_pid(url) for _ in range(8)}
    _, err = stop_with_sigterm(process)
    assert process.returncode == 0 and not crashes(err), err
    assert err.count("is done. Seeya!") >= 3, err  # uWSGI's line for a recycled worker
    assert len(pids) >= 3, pids
    spans = work_spans(receiver)
    assert {int(str(s.resource["process.pid"])) for s in spans} >= pids, err
    assert_linked_in_own_process(receiver, spans, "handle_work", WORKER_MIN_LINKED_MS, timeout=5)


def linked_to_own_greenlet(receiver: RecordingReceiver, spans: list[ReceivedSpan]) -> None:
    """Every request span has its own samples of the handler, and no sample two span ids."""
    assert_linked_in_own_process(receiver, spans, "handle_work", WORKER_MIN_LINKED_MS, timeout=5)
    for sample in receiver.samples():
        assert len([k for k, _ in sample.label_pairs if k == "span_id"]) <= 1


def test_gevent_app_greenlets_each_labelled_with_their_own_span(
    receiver: RecordingReceiver, cleanup: list[subprocess.Popen[str]]
) -> None:
    # Monkey-patched first thing, then requests whose greenlets take turns every 7 ms.
    port = free_port()
    env = backend_env(receiver, OTEL_SERVICE_NAME="green")
    env.update(SEND_ONLY_AT_EXIT)
    process = start([PYROSPAN_RUN, PY, "green_wsgi.py", "gevent", str(port)], env)
    cleanup.append(process)
    url = f"http://127.0.0.1:{port}/work"
    wait_for_http(url, process, timeout=60)
    assert requests_reaching(url, 1) == {process.pid}
    ended, err = stop_with_sigterm(process)
    assert process.returncode == -signal.SIGTERM, err
    assert ended < 1.0, f"{ended:.2f} s to stop"
    assert "Traceback" not in err and "pyrospan: " not in err, err
    spans = work_spans(receiver)
    assert len(spans) >= REQUESTS
    linked_to_own_greenlet(receiver, spans)


def test_eventlet_app_linked_and_says_what_sigterm_loses(
    receiver: RecordingReceiver, cleanup: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    env = backend_env(receiver, OTEL_SERVICE_NAME="green")
    process = start([PYROSPAN_RUN, PY, "green_wsgi.py", "eventlet", str(port)], env)
    cleanup.append(process)
    url = f"http://127.0.0.1:{port}/work"
    wait_for_http(url, process, timeout=60)
    assert requests_reaching(url, 1) == {process.pid}
    assert receiver.wait_for(lambda r: len(work_spans(r)) >= REQUESTS, timeout=20)
    linked_to_own_greenlet(receiver, work_spans(receiver))
    ended, err = stop_with_sigterm(process)
    assert process.returncode == -signal.SIGTERM, err
    assert ended < 1.0, f"{ended:.2f} s to stop"
    lines = [line for line in err.splitlines() if line.startswith("pyrospan: ")]
    assert lines == [
        "pyrospan: eventlet: on SIGTERM the spans still queued for export are lost (eventlet's "
        "event loop cannot wait for them in a signal handler); profiles are sent, and so is "
        "everything at a normal exit"
    ], err


@pytest.mark.parametrize("pool", ["threads", "gevent"])
def test_celery_pool_tasks_linked_in_the_worker(
    receiver: RecordingReceiver, cleanup: list[subprocess.Popen[str]], tmp_path: Path, pool: str
) -> None:
    for folder in ("queue", "processed", "results"):
        (tmp_path / folder).mkdir()
    env = backend_env(receiver, BROKER_DIR=str(tmp_path), OTEL_SERVICE_NAME="tasks")
    env.update(SEND_ONLY_AT_EXIT)
    celery = [f"{BIN}/celery", "--workdir", str(PROGRAMS), "-A", "celery_tasks", "worker"]
    options = ["--pool", pool, "-c", "2", "--without-heartbeat", "--without-gossip"]
    worker = start(
        [PYROSPAN_RUN, *celery, *options, "--without-mingle", "--loglevel", "WARNING"], env
    )
    cleanup.append(worker)
    sent = run([PY, str(PROGRAMS / "celery_tasks.py"), "6"], clean_env(BROKER_DIR=str(tmp_path)))
    assert sent.returncode == 0, sent.stderr
    assert {int(pid) for pid in sent.stdout.split()} == {worker.pid}
    assert receiver.spans == []
    _, err = stop_with_sigterm(worker)
    assert worker.returncode == 0, err
    runs = [s for s in receiver.spans if s.name == "run/celery_tasks.crunch"]
    assert len(runs) == 6
    assert_linked_in_own_process(receiver, runs, "celery_task_work", WORKER_MIN_LINKED_MS, 5)
