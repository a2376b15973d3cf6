"""Load a server from this process and read its CPU time: requests/s, p99, CPU per request, RSS.

Shared by the span_cost and steady_state benchmarks.
"""

from __future__ import annotations

import http.client
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class LoadResult:
    """What one load run measured."""

    requests: int
    seconds: float
    p99_ms: float
    cpu_seconds: float
    rss_mb: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_seconds / self.requests * 1000


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (server workers included)."""
    found = [pid]
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for child_pid in child.read_text().split():
            found += process_tree(int(child_pid))
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime, every thread included
    return total / CLOCK_TICKS


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """Each thread of ``pid``: its name (``comm``) and its CPU seconds so far."""
    found: dict[int, tuple[str, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            name = (task / "comm").read_text().strip()
        except FileNotFoundError:
            continue  # ended meanwhile
        found[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return found


def rss_mb(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total / 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} never answered")


def load(port: int, path: str, seconds: float, clients: int) -> tuple[int, list[float]]:
    """Keep-alive clients in threads, for ``seconds``; returns the count and latencies."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < stop_at:
            start = time.perf_counter()
            connection.request("GET", path)
            connection.getresponse().read()
            latencies[index].append(time.perf_counter() - start)
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged = [value for values in latencies for value in values]
    return len(merged), merged


def pin_load_to(cpus: set[int]) -> None:
    """Keep this process, its load threads and its receiver, on ``cpus`` from now on.

    Threads started later inherit the affinity of the thread that starts them, so this
    is called before any of them.
    """
    os.sched_setaffinity(0, cpus)


def run_server(
    command: Sequence[str],
    env: Mapping[str, str],
    path: str,
    seconds: float,
    clients: int = 8,
    server_cpus: set[int] | None = None,
) -> LoadResult:
    """Start a server, warm it up, load it and measure it, then stop it.

    With ``server_cpus``, the server and every process it forks run on those CPUs only
    (``taskset``), apart from the load: the two no longer take turns on each other's
    cores, which moves CPU per request less from run to run.
    """
    port = free_port()
    full = [part.replace("{port}", str(port)) for part in command]
    if server_cpus:
        full = ["taskset", "-c", ",".join(map(str, sorted(server_cpus))), *full]
    process = subprocess.Popen(
        full, env=dict(env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}{path}", process)
        load(port, path, 1.0, clients)  # warm-up: imports, lazy instrumentation, caches
        pids = process_tree(process.pid)
        cpu_before = cpu_seconds(pids)
        start = time.monotonic()
        count, latencies = load(port, path, seconds, clients)
        elapsed = time.monotonic() - start
        cpu = cpu_seconds(pids) - cpu_before
        memory = rss_mb(pids)
    finally:
        process.terminate()
        process.wait(timeout=30)
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan")
    return LoadResult(count, elapsed, p99, cpu, memory)


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without pyrospan, Pyroscope or OpenTelemetry settings, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYROSPAN_", "PYROSCOPE_", "OTEL_"))
    }
    env.update(extra)
    return env


def backend_env(url: str, service: str) -> dict[str, str]:
    """:func:`clean_env` sending profiles and spans to a local receiver at ``url``."""
    return clean_env(
        OTEL_SERVICE_NAME=service,
        PYROSCOPE_SERVER_ADDRESS=url,
        OTEL_EXPORTER_OTLP_ENDPOINT=url,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    )


def opentelemetry_instrument_env() -> dict[str, str]:
    """What ``opentelemetry-instrument`` needs to set up the SDK: the distro on PYTHONPATH.

    Without a distro (or another configurator) opentelemetry-instrument configures no
    SDK at all, its spans record nothing, and it would be a cheaper reference than the
    zero-code set-ups it stands for.  The development environment has no distro (neither
    does pyrospan-run need one), so the distro of the installed instrumentation's release
    is installed once under benchmarks/.venvs, without dependencies.
    """
    from importlib.metadata import version

    release = version("opentelemetry-instrumentation")
    target = Path(__file__).resolve().parent / ".venvs" / f"distro-{release}"
    if not (target / "opentelemetry" / "distro").is_dir():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(target),
                f"opentelemetry-distro=={release}",
            ],
            check=True,
        )
    return {"PYTHONPATH": str(target)}


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
