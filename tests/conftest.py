"""Shared fixtures: process-state hygiene, the receiver, and running programs under pyrospan-run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from recording_receiver import RecordingReceiver

PROGRAMS = Path(__file__).parent / "programs"
BIN = Path(sys.executable).parent
PYROSPAN_RUN = str(BIN / "pyrospan-run")

# The two ways to start the launcher; "is like python" tests run under both.
LAUNCHERS = {
    "console-script": [PYROSPAN_RUN],
    "python-m": [sys.executable, "-m", "pyrospan_launch"],
}


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


def _native_threads() -> int:
    """OS threads of this process that Python did not start (pyroscope-io's sampler)."""
    try:
        return len(os.listdir("/proc/self/task")) - threading.active_count()
    except OSError:
        return 0


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
    native_before = _native_threads()
    yield
    trace_module = sys.modules.get("opentelemetry.trace")
    if otel_before[0] is None and trace_module is not None:
        # Loaded by this test: only a provider it set counts (the proxy is the default).
        assert getattr(trace_module, "_TRACER_PROVIDER", None) is None, "a TracerProvider leaked"
    else:
        assert _otel_globals()[0] is otel_before[0], "the global TracerProvider changed"
    if otel_before[1] is not None:
        assert _otel_globals()[1] is otel_before[1], "the runtime context changed"
    deadline = time.monotonic() + 2
    while _native_threads() > native_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _native_threads() <= native_before, "a profiler (native threads) is still running"


@pytest.fixture(params=sorted(LAUNCHERS))
def launcher(request: pytest.FixtureRequest) -> list[str]:
    """The launcher command, once as the console script and once as ``python -m``."""
    return list(LAUNCHERS[request.param])


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


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any pyrospan, Pyroscope or OTel setting."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYROSPAN_", "PYROSCOPE_", "OTEL_", "_PYROSPAN"))
        and key != "PYTHONPATH"
    }
    env.update(extra)
    return env


def backend_env(receiver: RecordingReceiver, **extra: str) -> dict[str, str]:
    """Environment pointing both signals at ``receiver``, with short intervals for tests."""
    return clean_env(
        PYROSCOPE_SERVER_ADDRESS=receiver.url,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        PYROSCOPE_UPLOAD_INTERVAL="1",
        OTEL_BSP_SCHEDULE_DELAY="200",
        **extra,
    )


def run(
    command: Sequence[str],
    env: Mapping[str, str],
    cwd: Path | str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion and capture its output as text."""
    return subprocess.run(
        list(command),
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, process: subprocess.Popen[str], timeout: float = 30) -> None:
    """Wait until ``url`` answers, failing early with the server's output if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"server exited {process.returncode}:\n{out}\n{err}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                response.read()
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def start_server(command: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[str]:
    """Start a long-running server with its output captured (read it with :func:`stop`)."""
    return subprocess.Popen(
        list(command),
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen[str], timeout: float = 15) -> tuple[str, str]:
    """Terminate a server politely and return its output."""
    if process.poll() is None:
        process.terminate()
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()
