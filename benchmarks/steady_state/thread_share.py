"""Where a busy service's CPU goes, thread by thread: the profiler's own threads against the app.

CPU per request moves by 10 to 20% from run to run on a shared 2-core machine (its
speed changes under us), far more than the 3% this project allows the profiler.  Shares
of one process's CPU, taken within one run, move with it and stay comparable.  So the
busy async service of ``run.py`` (the attribution benchmark's FastAPI service under
uvicorn, ``--depth`` frames of async layers, 20 chunks of 0.3 ms per request) is served
under pyrospan-run, loaded with keep-alive clients, and every thread's CPU is read from
``/proc`` before and after: the main thread (the event loop: the app, OpenTelemetry and
our span machinery) and the others (the sampler, the relay, the profile uploader, the
span exporter).  The same with ``PYROSPAN_PROFILING=false`` gives the other threads'
share without the profiler (the span exporter alone); the difference is the profiler
threads' share of the process.  Rounds interleave the two; medians are printed.

The main thread's own extra work (marker frames, the label switch on each task step,
the CPU-timer signals) is in ``run.py``'s profiling on / off ratio, not here.

``--app fastapi`` serves the FastAPI example instead (``/recommendations?products=800``,
short requests with no layers), as ``run.py`` does.

    python benchmarks/steady_state/thread_share.py [--rounds 5] [--seconds 10] [--sampler stack]
        [--app async|fastapi]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ATTRIBUTION = HERE.parent / "attribution"
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(ATTRIBUTION))
from loadgen import free_port, load, thread_cpu, wait_ready  # noqa: E402
from web import receiver_env  # noqa: E402

from pyrospan_launch.receiver.server import Receiver  # noqa: E402

PYROSPAN = str(Path(sys.executable).parent / "pyrospan-run")
EXAMPLES = HERE.parent.parent / "examples"
# Each app's uvicorn arguments (after --app-dir's folder) and the path it is loaded on.
APPS: dict[str, tuple[Path, str, str]] = {
    "async": (ATTRIBUTION, "web_app:app", "/search"),
    "fastapi": (EXAMPLES / "fastapi_app", "app:app", "/recommendations?products=800"),
}


def other_threads_share(
    env: dict[str, str], seconds: float, depth: int, app: str = "async"
) -> tuple[float, int]:
    """Share of the server's CPU used outside its main thread, and the requests served."""
    folder, target, path = APPS[app]
    port = free_port()
    command = [PYROSPAN, sys.executable, "-m", "uvicorn", "--app-dir", str(folder)]
    command += ["--port", str(port), "--no-access-log", target]
    server = subprocess.Popen(
        command,
        env={**env, "WEB_DEPTH": str(depth), "WEB_CHUNK_MS": "0.3"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}{path}", server)
        load(port, path, 1.0, 8)  # warm-up
        before = thread_cpu(server.pid)
        count, _ = load(port, path, seconds, 8)
        after = thread_cpu(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    used = {tid: cpu - before.get(tid, ("", 0.0))[1] for tid, (_, cpu) in after.items()}
    total = sum(used.values())
    main = used.get(server.pid, 0.0)
    return (total - main) / total if total else 0.0, count


def measure(
    variants: dict[str, dict[str, str]], rounds: int, seconds: float, depth: int, app: str
) -> dict[str, list[float]]:
    """Each variant's share per round, the order alternating from round to round."""
    shares: dict[str, list[float]] = {name: [] for name in variants}
    for round_no in range(rounds):
        order = list(variants) if round_no % 2 == 0 else list(reversed(variants))
        for name in order:
            share, count = other_threads_share(variants[name], seconds, depth, app)
            shares[name].append(share)
            print(
                f"round {round_no + 1} profiling {name}: {count} requests, "
                f"other threads {share * 100:.2f}% of the process",
                flush=True,
            )
        time.sleep(0.5)
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sampler", default="stack", help="PYROSPAN_SAMPLER: stack or pyspy")
    parser.add_argument("--depth", type=int, default=30, help="the service's async layers")
    parser.add_argument("--app", choices=sorted(APPS), default="async")
    args = parser.parse_args()
    with Receiver() as receiver:
        base = receiver_env(
            receiver, OTEL_SERVICE_NAME="thread-share", OTEL_BSP_MAX_QUEUE_SIZE="200000"
        )
        variants = {
            "on": {**base, "PYROSPAN_SAMPLER": args.sampler},
            "off": {**base, "PYROSPAN_PROFILING": "false"},
        }
        shares = measure(variants, args.rounds, args.seconds, args.depth, args.app)
    on, off = statistics.median(shares["on"]), statistics.median(shares["off"])
    differences = [a - b for a, b in zip(shares["on"], shares["off"], strict=True)]
    print(
        f"\nthreads other than the event loop, median of {args.rounds} rounds: "
        f"{on * 100:.2f}% of the process with profiling ({args.sampler}), {off * 100:.2f}% "
        f"without; the profiler's threads: {statistics.median(differences) * 100:.2f}% "
        f"(per round {', '.join(f'{d * 100:.2f}' for d in differences)})"
    )


if __name__ == "__main__":
    main()
