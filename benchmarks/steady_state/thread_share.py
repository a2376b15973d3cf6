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

``--by-thread`` also prints each thread's CPU per request, by the thread's name: the
served app runs with ``thread_names/sitecustomize.py``, which gives each Python thread
its name at the OS level (before 3.14 they all read ``python``).  Threads started by
native code keep the name ``python``: with the Stack sampler, pyroscope-io's sampler
and uploader.  Within one run these split the profiler's threads into the sampler, the
relay and the span exporter (whose extra work with profiling on is the
``pyroscope.profile.id`` attribute of each root span).

    python benchmarks/steady_state/thread_share.py [--rounds 5] [--seconds 10] [--sampler stack]
        [--app async|fastapi] [--by-thread]
"""

from __future__ import annotations

import argparse
import collections
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
THREAD_NAMES = HERE / "thread_names"
MAIN = "(main thread)"


class Round:
    """One server's run: its requests, and each thread name's CPU per request in µs."""

    def __init__(self, count: int, by_name: dict[str, float]) -> None:
        self.count = count
        self.by_name = by_name

    @property
    def other_share(self) -> float:
        """The share of the server's CPU used outside its main thread."""
        total = sum(self.by_name.values())
        return (total - self.by_name.get(MAIN, 0.0)) / total if total else 0.0


def serve_and_load(env: dict[str, str], seconds: float, depth: int, app: str = "async") -> Round:
    """Serve ``app`` under pyrospan-run, load it, and read every thread's CPU."""
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
    by_name: collections.Counter[str] = collections.Counter()
    for tid, (name, cpu) in after.items():
        used = cpu - before.get(tid, ("", 0.0))[1]
        by_name[MAIN if tid == server.pid else name] += used * 1e6 / max(1, count)
    return Round(count, dict(by_name))


def measure(
    variants: dict[str, dict[str, str]], rounds: int, seconds: float, depth: int, app: str
) -> dict[str, list[Round]]:
    """Each variant's rounds, the order alternating from round to round."""
    runs: dict[str, list[Round]] = {name: [] for name in variants}
    for round_no in range(rounds):
        order = list(variants) if round_no % 2 == 0 else list(reversed(variants))
        for name in order:
            run = serve_and_load(variants[name], seconds, depth, app)
            runs[name].append(run)
            print(
                f"round {round_no + 1} profiling {name}: {run.count} requests, "
                f"other threads {run.other_share * 100:.2f}% of the process",
                flush=True,
            )
        time.sleep(0.5)
    return runs


def print_by_thread(runs: dict[str, list[Round]]) -> None:
    """Each thread name's CPU per request, medians of the rounds, on against off."""
    names = sorted({name for rounds in runs.values() for run in rounds for name in run.by_name})
    print("\nCPU per request by thread, µs, medians (on, off, on - off):")
    for name in names:
        on = [run.by_name.get(name, 0.0) for run in runs["on"]]
        off = [run.by_name.get(name, 0.0) for run in runs["off"]]
        differences = [a - b for a, b in zip(on, off, strict=True)]
        print(
            f"  {name:<18} {statistics.median(on):9.1f} {statistics.median(off):9.1f} "
            f"{statistics.median(differences):+9.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sampler", default="stack", help="PYROSPAN_SAMPLER: stack or pyspy")
    parser.add_argument("--depth", type=int, default=30, help="the service's async layers")
    parser.add_argument("--app", choices=sorted(APPS), default="async")
    parser.add_argument(
        "--by-thread", action="store_true", help="also print each thread's CPU per request"
    )
    args = parser.parse_args()
    with Receiver() as receiver:
        base = receiver_env(
            receiver, OTEL_SERVICE_NAME="thread-share", OTEL_BSP_MAX_QUEUE_SIZE="200000"
        )
        if args.by_thread:
            base["PYTHONPATH"] = str(THREAD_NAMES)
        variants = {
            "on": {**base, "PYROSPAN_SAMPLER": args.sampler},
            "off": {**base, "PYROSPAN_PROFILING": "false"},
        }
        runs = measure(variants, args.rounds, args.seconds, args.depth, args.app)
    shares = {name: [run.other_share for run in rounds] for name, rounds in runs.items()}
    on, off = statistics.median(shares["on"]), statistics.median(shares["off"])
    differences = [a - b for a, b in zip(shares["on"], shares["off"], strict=True)]
    print(
        f"\nthreads other than the event loop, median of {args.rounds} rounds: "
        f"{on * 100:.2f}% of the process with profiling ({args.sampler}), {off * 100:.2f}% "
        f"without; the profiler's threads: {statistics.median(differences) * 100:.2f}% "
        f"(per round {', '.join(f'{d * 100:.2f}' for d in differences)})"
    )
    if args.by_thread:
        print_by_thread(runs)


if __name__ == "__main__":
    main()
