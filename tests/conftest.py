"""Shared fixtures: process-state hygiene, the receiver, the launchers (helpers: helpers.py)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from helpers import LAUNCHERS, clean_env, run
from recording_receiver import RecordingReceiver


@pytest.fixture(autouse=True)
def _restore_process_state() -> Iterator[None]:
    """No test may leak environment variables or import-path entries into the next."""
    environ = dict(os.environ)
    path = list(sys.path)
    yield
    os.environ.clear()
    os.environ.update(environ)
    sys.path[:] = path


IN_PROCESS_LAYERS = ("unit", "cli")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The whole unit layer is cheap and touches OpenTelemetry's API: it runs on every set."""
    for item in items:
        if item.path.parent.name == "unit":
            item.add_marker(pytest.mark.otel)


def _os_thread_ids() -> set[int]:
    """The ids of this process's OS threads (empty where /proc is not there)."""
    try:
        return {int(task) for task in os.listdir("/proc/self/task")}
    except OSError:
        return set()


def _native_threads_since(before: set[int]) -> set[int]:
    """OS threads started since ``before`` that Python did not start (pyroscope-io's sampler).

    By id, not by count: a thread an earlier test started can leave ``threading``'s list
    during this test while its OS thread winds down (a library's thread cache keeps an idle
    worker for seconds), and a count took it for one this test had started.
    """
    python = {thread.native_id for thread in threading.enumerate()}
    return _os_thread_ids() - before - python


def _thread_names(ids: set[int] | None = None) -> list[str]:
    """The OS names of this process's threads, or of ``ids`` only (pyroscope-io's own are
    not Python's)."""
    names = []
    for task in os.listdir("/proc/self/task") if ids is None else map(str, ids):
        try:
            with open(f"/proc/self/task/{task}/comm") as comm:
                names.append(comm.read().strip())
        except OSError:
            continue
    return sorted(names)


def _otel_globals() -> tuple[object, object]:
    """The global TracerProvider and runtime context, if OpenTelemetry is loaded."""
    trace = sys.modules.get("opentelemetry.trace")
    context = sys.modules.get("opentelemetry.context")
    return (
        getattr(trace, "_TRACER_PROVIDER", None),
        getattr(context, "_RUNTIME_CONTEXT", None),
    )


@pytest.fixture(autouse=True)
def _no_leaked_tracing_or_profiler(request: pytest.FixtureRequest) -> Iterator[None]:
    """In-process tests leave no TracerProvider, runtime context or profiler behind."""
    if request.path.parent.name not in IN_PROCESS_LAYERS:
        yield
        return
    otel_before = _otel_globals()
    threads_before = _os_thread_ids()
    yield
    trace_module = sys.modules.get("opentelemetry.trace")
    if otel_before[0] is None and trace_module is not None:
        # Loaded by this test: only a provider it set counts (the proxy is the default).
        assert getattr(trace_module, "_TRACER_PROVIDER", None) is None, "a TracerProvider leaked"
    else:
        assert _otel_globals()[0] is otel_before[0], "the global TracerProvider changed"
    if otel_before[1] is not None:
        assert _otel_globals()[1] is otel_before[1], "the runtime context changed"
    # A thread that ended leaves threading's list at once and /proc a moment later; on a
    # loaded 2-core machine that moment once outlasted 2 s.  Waiting costs nothing when no
    # thread lingers.
    deadline = time.monotonic() + 10
    while _native_threads_since(threads_before) and time.monotonic() < deadline:
        time.sleep(0.05)
    lingering = _native_threads_since(threads_before)
    assert not lingering, (
        f"a profiler (native threads) is still running: {_thread_names(lingering)} "
        f"of {_thread_names()}"
    )


@pytest.fixture(params=sorted(LAUNCHERS))
def launcher(request: pytest.FixtureRequest) -> list[str]:
    """The launcher command, once as the console script and once as ``python -m``."""
    return list(LAUNCHERS[request.param])


@pytest.fixture
def default_dispositions() -> Iterator[None]:
    """The signals a test sends to the programs it starts, not ignored there.

    An ignored signal stays ignored across exec: a test run started under ``nohup``
    (SIGHUP) or as a background job of a shell without job control (SIGINT) would hand
    its programs signals that do nothing, with or without pyrospan-run.
    """
    restored = {}
    for sent in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        if signal.getsignal(sent) == signal.SIG_IGN:
            restored[sent] = signal.signal(sent, signal.SIG_DFL)
    try:
        yield
    finally:
        for sent, before in restored.items():
            signal.signal(sent, before)


@pytest.fixture
def receiver() -> Iterator[RecordingReceiver]:
    """A live receiver on 127.0.0.1 standing in for Pyroscope and an OTLP backend."""
    with RecordingReceiver() as live:
        yield live


@pytest.fixture(scope="session")
def distro_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A directory holding the real opentelemetry-distro, for the PYTHONPATH of zero-code apps.

    pyrospan-run does not depend on the distro and the test environments have none, as
    most apps; an app set up for ``opentelemetry-instrument`` has it.  The distro of the
    installed instrumentation's release is installed here once per session (no deps: the
    rest is this environment's).
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("opentelemetry-distro")
    except PackageNotFoundError:
        installed = None
    assert installed is None, (
        f"opentelemetry-distro {installed} is installed here; the test environments have "
        "none (make install removes it)"
    )
    target = tmp_path_factory.mktemp("distro")
    wanted = f"opentelemetry-distro=={version('opentelemetry-instrumentation')}"
    done = run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            wanted,
        ],
        clean_env(),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return str(target)
