"""The app thread's CPU per request, in-process: what profiling adds where the app runs.

A server's CPU per request (``steady_state/run.py``) moves by several percent from run to
run on a 2-core machine: the network, the load generator and the server's other threads
all share the cores.  This drives an example app with no network at all, from its own
main thread, under ``pyrospan-run``: Flask through its WSGI test client, FastAPI by
awaiting its ASGI callable in a task of its own per request (as uvicorn runs each
connection).  It times that thread alone (``time.thread_time()``), so what is left is the
app, OpenTelemetry and pyrospan-run's span machinery on the app's thread: markers, the
label switch, linking, and the sampler's signals.  The profiler's own threads (sampler,
relay, uploader) are not in it; ``steady_state/thread_share.py`` measures those.

Each variant runs in a process of its own, pinned to the first CPU when there are two or
more; rounds interleave the variants and alternate their order.  Even so, a figure moves
by several percent from one run to the next as the machine's speed changes under us.
``--paired`` runs each variant at the same time as profiling off instead, one on each of
the first two CPUs, swapped from round to round: whatever slows the machine slows both,
and their ratio moves by about 1%.  Profiles and spans go to a local receiver.  The table
gives median milliseconds per request and each variant divided by profiling off (the
median of the per-round ratios, with their range).

    python benchmarks/span_cost/in_process.py [--app flask|fastapi] [--rounds 6]
        [--requests 3000] [--path /invoice?lines=200] [--variants "stack;off"] [--paired]

``--drive`` is the child: it runs under pyrospan-run and prints one figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from subprocess import PIPE
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BIN = Path(sys.executable).parent

APPS = {
    "flask": (ROOT / "examples" / "flask_app", "/invoice?lines=200"),
    "fastapi": (ROOT / "examples" / "fastapi_app", "/recommendations?products=100"),
}
# Variant name -> its environment on top of the common one.
VARIANTS: dict[str, dict[str, str]] = {
    "off": {"PYROSPAN_PROFILING": "false"},
    "stack": {"PYROSPAN_SAMPLER": "stack"},
    "stack at 1 Hz": {"PYROSPAN_SAMPLER": "stack", "PYROSCOPE_SAMPLE_RATE": "1"},
    "py-spy": {"PYROSPAN_SAMPLER": "pyspy"},
    "tags (py-spy)": {"PYROSPAN_SAMPLER": "pyspy", "PYROSPAN_SPAN_LABELS": "tags"},
}
WARM_UP = 300


def drive_flask(app_dir: Path, path: str, requests: int) -> float:
    """Seconds of this thread's CPU for ``requests`` GETs of ``path``, by Flask's test client."""
    sys.path.insert(0, str(app_dir))
    from app import app  # type: ignore[import-not-found]

    client = app.test_client()
    for _ in range(WARM_UP):
        client.get(path)
    start = time.thread_time()
    for _ in range(requests):
        client.get(path)
    return time.thread_time() - start


def _scope(path: str) -> dict[str, Any]:
    route, _, query = path.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": route,
        "raw_path": route.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"in-process")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _one_request(app: Any, path: str) -> None:
    body = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        return body.pop() if body else {"type": "http.disconnect"}

    status: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(_scope(path), receive, send)
    if status != [200]:
        raise SystemExit(f"{path}: status {status}")


def drive_asgi(app_dir: Path, path: str, requests: int) -> float:
    """Seconds of this thread's CPU for ``requests`` GETs, each awaited in a task of its own."""
    sys.path.insert(0, str(app_dir))
    from app import app

    async def run() -> float:
        for _ in range(WARM_UP):
            await asyncio.create_task(_one_request(app, path))
        start = time.thread_time()
        for _ in range(requests):
            await asyncio.create_task(_one_request(app, path))
        return time.thread_time() - start

    return asyncio.run(run())


def drive(app_name: str, path: str, requests: int) -> None:
    app_dir, _ = APPS[app_name]
    seconds = (drive_flask if app_name == "flask" else drive_asgi)(app_dir, path, requests)
    print(f"{1000 * seconds / requests:.5f}", flush=True)


def _command(app_name: str, path: str, requests: int, cpu: int | None) -> list[str]:
    command = [
        str(BIN / "pyrospan-run"),
        sys.executable,
        str(Path(__file__).resolve()),
        "--drive",
        "--app",
        app_name,
        "--path",
        path,
        "--requests",
        str(requests),
    ]
    return command if cpu is None else ["taskset", "-c", str(cpu), *command]


def _figure(command: list[str], done: subprocess.CompletedProcess[str]) -> float:
    lines = done.stdout.split()
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return float(lines[-1])


def run_variant(app_name: str, path: str, requests: int, env: dict[str, str]) -> float:
    """Milliseconds of the app thread's CPU per request, from one child under pyrospan-run."""
    cpu = 0 if (os.cpu_count() or 1) > 1 else None
    command = _command(app_name, path, requests, cpu)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    return _figure(command, done)


def run_pair(
    app_name: str, path: str, requests: int, envs: tuple[dict[str, str], dict[str, str]], swap: bool
) -> tuple[float, float]:
    """Two children at once, one on each of the first two CPUs (swapped when ``swap``).

    Whatever slows the machine down while they run slows both: their ratio moves far
    less from round to round than figures taken one after the other.
    """
    cpus = (1, 0) if swap else (0, 1)
    commands = [_command(app_name, path, requests, cpu) for cpu in cpus]
    children = [
        subprocess.Popen(command, env=env, stdout=PIPE, stderr=PIPE, text=True)
        for command, env in zip(commands, envs, strict=True)
    ]
    figures = []
    for command, child in zip(commands, children, strict=True):
        stdout, stderr = child.communicate(timeout=600)
        figures.append(
            _figure(command, subprocess.CompletedProcess(command, child.returncode, stdout, stderr))
        )
    return figures[0], figures[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", choices=sorted(APPS), default="flask")
    parser.add_argument("--path", default="", help="the request's path and query")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument(
        "--variants",
        default="off;stack;stack at 1 Hz;tags (py-spy)",
        help=f"separated by ';', of: {'; '.join(VARIANTS)}",
    )
    parser.add_argument(
        "--paired",
        action="store_true",
        help="run each variant at the same time as profiling off, one per CPU (2 CPUs)",
    )
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = args.path or APPS[args.app][1]
    if args.drive:
        drive(args.app, path, args.requests)
        return
    names = [name.strip() for name in args.variants.split(";") if name.strip()]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown or "off" not in names:
        raise SystemExit(f"--variants: known are {'; '.join(VARIANTS)}, and off is needed")

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE.parent))
    from loadgen import backend_env

    from pyrospan_launch.receiver.server import Receiver

    if args.paired and len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("--paired needs two CPUs")
    with Receiver() as receiver:
        common = backend_env(receiver.url, "in-process")
        measure = measure_paired if args.paired else measure_interleaved
        results, ratios = measure(args.app, path, args.requests, args.rounds, names, common)
    how = "each variant beside profiling off, on the other CPU" if args.paired else "interleaved"
    print(
        f"{args.app} {path}, {args.requests} requests a run, app thread CPU per request, "
        f"median of {args.rounds} rounds ({how})\n"
    )
    print("| variant | ms per request | ÷ profiling off | (min to max) |")
    print("|---|---|---|---|")
    for name in names:
        each = ratios.get(name, [1.0])
        print(
            f"| {name} | {statistics.median(results[name]):.4f} | "
            f"{statistics.median(each):.3f} | {min(each):.3f} to {max(each):.3f} |"
        )


Figures = tuple[dict[str, list[float]], dict[str, list[float]]]


def measure_interleaved(
    app: str, path: str, requests: int, rounds: int, names: list[str], common: dict[str, str]
) -> Figures:
    """Each variant's ms per request, one run after another, and its ratios to off."""
    results: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(rounds):
        for name in names if round_number % 2 == 0 else names[::-1]:
            ms = run_variant(app, path, requests, {**common, **VARIANTS[name]})
            results[name].append(ms)
            print(f"  round {round_number + 1} {name}: {ms:.4f} ms", file=sys.stderr)
    off = results["off"]
    ratios = {
        name: [x / y for x, y in zip(results[name], off, strict=True)]
        for name in names
        if name != "off"
    }
    return results, ratios


def measure_paired(
    app: str, path: str, requests: int, rounds: int, names: list[str], common: dict[str, str]
) -> Figures:
    """Each variant's ms per request beside profiling off, and its ratio within each pair."""
    results: dict[str, list[float]] = {name: [] for name in names}
    ratios: dict[str, list[float]] = {name: [] for name in names if name != "off"}
    for round_number in range(rounds):
        for name in ratios:
            envs = ({**common, **VARIANTS[name]}, {**common, **VARIANTS["off"]})
            ms, off_ms = run_pair(app, path, requests, envs, swap=round_number % 2 == 1)
            results[name].append(ms)
            results["off"].append(off_ms)
            ratios[name].append(ms / off_ms)
            print(
                f"  round {round_number + 1} {name}: {ms:.4f} ms beside off {off_ms:.4f} ms",
                file=sys.stderr,
            )
    return results, ratios


if __name__ == "__main__":
    main()
