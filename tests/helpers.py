"""What tests share besides fixtures: paths, environments, running programs and servers.

Test modules import these from here; ``conftest.py`` holds only fixtures.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from recording_receiver import RecordingReceiver

PROGRAMS = Path(__file__).parent / "programs"
BIN = Path(sys.executable).parent
PYROSPAN_RUN = str(BIN / "pyrospan-run")

# The two ways to start the launcher; "is like python" tests run under both.
LAUNCHERS = {
    "console-script": [PYROSPAN_RUN],
    "python-m": [sys.executable, "-m", "pyrospan_launch"],
}


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


def both_tools_env(receiver: RecordingReceiver, **extra: str) -> dict[str, str]:
    """:func:`backend_env` that ``opentelemetry-instrument`` and pyrospan-run read alike.

    Spans only, over OTLP/HTTP: ``opentelemetry-instrument`` defaults to gRPC, whose
    exporter is not installed here, and to metrics and logs exporters.
    """
    return backend_env(
        receiver,
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
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


def _ephemeral_low() -> int:
    """The lowest port the kernel gives outgoing connections (Linux's default: 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing uses right now, below the ephemeral range.

    A port the kernel picks for ``bind(0)`` comes from the range it also gives outgoing
    connections.  Between this call and the server's own bind, a client connection of the
    test run could take it (a gunicorn test once found its port in use for 5 s).  Below
    that range, only another server can.
    """
    low = _ephemeral_low()
    for _ in range(100):
        port = random.randint(max(1024, low - 12000), low - 1)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # every try was taken: the kernel's pick, as before
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
