"""Steady state in pairs: each variant served at the same time as a reference, one per CPU.

``run.py`` serves its variants one after another.  On a 2-core machine the speed of the
machine moves under such runs (the same variant's CPU per request ranged over 20% within
one run), and a ratio of 1.03 is lost in it.  Here each variant runs *beside* the
reference instead: the two servers start together, each pinned to a CPU of its own
with its own load generator (wrk, which costs little CPU per request), and they are
loaded over the same seconds.  Whatever slows the machine slows both.  Rounds swap the
two CPUs, so a difference between the cores cancels out.

Printed per app: CPU milliseconds per request of each variant (every process and thread
of the server, profiler, relay and exporter included; medians), and the median of the
per-round ratios to the reference, with their range.  The reference is pyrospan-run
with its profiler off (``--against off``, the profiler's whole cost) or
opentelemetry-instrument (``--against otel``).  Both servers are busy: each saturates
its CPU with the load beside it.

    python benchmarks/steady_state/paired.py [--apps flask,fastapi,aiohttp,async] [--rounds 6]
        [--seconds 6] [--samplers stack] [--against off|otel] [--depth 30] [--one-cpu]

``--threads`` also prints where each variant's CPU per request goes, thread by thread
(from ``/proc``): the main threads (the app, OpenTelemetry and the span machinery, the
CPU-timer signals) and the others (pyroscope-io's sampler, the relay, the span exporter,
the server's helpers), those whose OS thread has a name of its own (Python 3.14 names
its threads) counted by that name.

``--one-cpu`` puts both servers of a pair on the same CPU, where they take turns, and
both ``wrk`` on the other.  On a machine whose CPUs run at different speeds, or change
speed from minute to minute, a pair on two CPUs measures the CPUs as much as the
variants; two servers taking turns on one CPU see the same speed at every moment.

Needs ``wrk`` (Debian's package of that name) and two CPUs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from loadgen import (  # noqa: E402
    backend_env,
    cpu_seconds,
    free_port,
    process_tree,
    thread_cpu,
    wait_ready,
)
from run import APPS, OFF, OTEL, TITLES, variants_of  # noqa: E402
from samplers import check  # noqa: E402

from pyrospan_launch.receiver.server import Receiver  # noqa: E402

CONNECTIONS = 8
WARM_UP_SECONDS = 1.0
_REQUESTS = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_FAILED = re.compile(r"^\s*(Non-2xx or 3xx responses|Socket errors):")


@dataclass(frozen=True)
class Served:
    """One server's share of one paired run."""

    requests: int
    cpu_seconds: float
    # CPU seconds by kind of thread (thread_kinds), for --threads.
    by_thread: Mapping[str, float]

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_seconds / self.requests * 1000


def _wrk(cpu: int, port: int, path: str, seconds: float) -> int:
    """Requests that wrk, pinned to ``cpu``, completed against ``port`` in ``seconds``."""
    done = subprocess.run(
        [
            "taskset", "-c", str(cpu), "wrk", "-t1", f"-c{CONNECTIONS}",
            f"-d{seconds:g}s", f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = _REQUESTS.search(done.stdout)
    if found is None:
        raise SystemExit(f"wrk printed no request count:\n{done.stdout}{done.stderr}")
    # Failed requests would be counted as served ones, at a fraction of their CPU.
    failed = [line.strip() for line in done.stdout.splitlines() if _FAILED.match(line)]
    if failed:
        raise SystemExit(f"wrk against port {port}: {'; '.join(failed)}")
    return int(found.group(1))


MAIN_THREADS = "main threads"
UNNAMED_THREADS = "other threads"


def thread_kinds(pids: Sequence[int]) -> dict[str, float]:
    """CPU seconds so far of ``pids``' threads, by kind: main, named (by name), unnamed.

    A thread that never set its name carries its process's: pyroscope-io's sampler does.
    Digits are dropped from names, so that a pool's threads count as one kind.
    """
    kinds: dict[str, float] = {}
    for pid in pids:
        try:
            threads = thread_cpu(pid)
        except FileNotFoundError:
            continue  # ended meanwhile
        own = threads.get(pid, ("", 0.0))[0]
        for tid, (name, cpu) in threads.items():
            if tid == pid:
                kind = MAIN_THREADS
            elif name == own:
                kind = UNNAMED_THREADS
            else:
                kind = re.sub(r"[-_]?\d+$", "", name)
            kinds[kind] = kinds.get(kind, 0.0) + cpu
    return kinds


class PinnedServer:
    """A server and every process it forks on one CPU, loaded by wrk on ``load_cpu``."""

    def __init__(
        self, command: Sequence[str], env: Mapping[str, str], path: str, cpu: int, load_cpu: int
    ) -> None:
        self.port = free_port()
        self.path = path
        self.cpu = cpu
        self.load_cpu = load_cpu
        full = [part.replace("{port}", str(self.port)) for part in command]
        self.process = subprocess.Popen(
            ["taskset", "-c", str(cpu), *full],
            env=dict(env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def ready(self) -> None:
        wait_ready(f"http://127.0.0.1:{self.port}{self.path}", self.process)
        _wrk(self.load_cpu, self.port, self.path, WARM_UP_SECONDS)

    def load(self, seconds: float) -> Served:
        pids = process_tree(self.process.pid)
        before, threads_before = cpu_seconds(pids), thread_kinds(pids)
        requests = _wrk(self.load_cpu, self.port, self.path, seconds)
        used, threads_after = cpu_seconds(pids) - before, thread_kinds(pids)
        by_thread = {k: v - threads_before.get(k, 0.0) for k, v in threads_after.items()}
        return Served(requests, used, by_thread)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def run_pair(
    first: tuple[list[str], dict[str, str]],
    second: tuple[list[str], dict[str, str]],
    env: Mapping[str, str],
    path: str,
    cpus: tuple[int, int],
    seconds: float,
    one_cpu: bool = False,
) -> tuple[Served, Served]:
    """Serve ``first`` on ``cpus[0]`` and ``second`` on ``cpus[1]``, loaded together.

    ``one_cpu``: both servers on ``cpus[0]``, taking turns on it, and both wrk on
    ``cpus[1]``.
    """
    if one_cpu:
        placed = [(cpus[0], cpus[1]), (cpus[0], cpus[1])]
    else:
        placed = [(cpus[0], cpus[0]), (cpus[1], cpus[1])]
    servers = [
        PinnedServer(command, {**env, **extra}, path, cpu, load_cpu)
        for (command, extra), (cpu, load_cpu) in zip((first, second), placed, strict=True)
    ]
    try:
        for server in servers:
            server.ready()
        results: list[Served | None] = [None, None]

        def measure(index: int) -> None:
            results[index] = servers[index].load(seconds)

        threads = [threading.Thread(target=measure, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for server in servers:
            server.stop()
    a, b = results
    if a is None or b is None:
        raise SystemExit("a load run failed")
    return a, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--samplers", default="stack")
    parser.add_argument("--apps", default=",".join(APPS), help="flask,fastapi,aiohttp,async")
    parser.add_argument("--against", choices=("off", "otel"), default="off")
    parser.add_argument("--depth", type=int, default=30, help="the async service's layers")
    parser.add_argument(
        "--split", action="store_true", help="also each sampler at 1 Hz (see run.py)"
    )
    parser.add_argument(
        "--threads", action="store_true", help="also CPU per request thread by thread"
    )
    parser.add_argument(
        "--one-cpu",
        action="store_true",
        help="both servers on one CPU, taking turns, and both wrk on the other",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("paired.py needs wrk: apt-get install wrk")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("paired.py needs two CPUs: one for each server of a pair")
    pair_cpus = (cpus[0], cpus[1])
    samplers = [s for s in args.samplers.split(",") if s]
    check(samplers)
    reference = OFF if args.against == "off" else OTEL
    with Receiver() as receiver:
        env = backend_env(receiver.url, "steady")
        layout = (
            f"both on one CPU, taking turns, and wrk with {CONNECTIONS} connections for each "
            "on the other"
            if args.one_cpu
            else f"one CPU each, wrk with {CONNECTIONS} connections beside each server"
        )
        print(
            f"Steady state in pairs: each variant beside {reference} ({layout}), "
            f"{args.rounds} rounds of {args.seconds:g} s, CPUs swapped from round to round\n"
        )
        for app in [a for a in APPS if a in args.apps.split(",")]:
            path = APPS[app][1]
            variants = variants_of(app, samplers, args.depth, args.split)
            if reference not in variants:
                print(f"{TITLES[app]}: no {reference} variant here, skipped\n")
                continue
            others = [
                name
                for name in variants
                if name != reference and (name.startswith("pyrospan-run") or name == OTEL)
            ]
            figures: dict[str, list[tuple[Served, Served]]] = {name: [] for name in others}
            for round_number in range(args.rounds):
                swap = round_number % 2 == 1
                for name in others if not swap else reversed(others):
                    cpu_pair = pair_cpus[::-1] if swap else pair_cpus
                    mine, theirs = run_pair(
                        variants[name],
                        variants[reference],
                        env,
                        path,
                        cpu_pair,
                        args.seconds,
                        args.one_cpu,
                    )
                    figures[name].append((mine, theirs))
                    print(
                        f"  {app} round {round_number + 1} {name}: "
                        f"{mine.cpu_ms_per_request:.3f} against "
                        f"{theirs.cpu_ms_per_request:.3f} CPU ms/req "
                        f"(x{mine.cpu_ms_per_request / theirs.cpu_ms_per_request:.3f})",
                        file=sys.stderr,
                        flush=True,
                    )
            print_app(app, reference, figures)
            if args.threads:
                print_threads(reference, figures)


def print_app(app: str, reference: str, figures: Mapping[str, list[tuple[Served, Served]]]) -> None:
    print(f"{TITLES[app]}\n")
    print(f"| variant | CPU ms per request | {reference} beside it | ratio | (min to max) |")
    print("|---|---|---|---|---|")
    for name, pairs in figures.items():
        ratios = [a.cpu_ms_per_request / b.cpu_ms_per_request for a, b in pairs]
        print(
            f"| {name} | {statistics.median(a.cpu_ms_per_request for a, _ in pairs):.3f} | "
            f"{statistics.median(b.cpu_ms_per_request for _, b in pairs):.3f} | "
            f"{statistics.median(ratios):.3f} | {min(ratios):.3f} to {max(ratios):.3f} |"
        )
    print(flush=True)


def print_threads(reference: str, figures: Mapping[str, list[tuple[Served, Served]]]) -> None:
    """Microseconds of CPU per request by kind of thread: each variant and its reference."""
    print(f"| variant | thread | CPU µs per request | {reference} beside it | difference |")
    print("|---|---|---|---|---|")
    for name, pairs in figures.items():
        kinds = sorted({k for a, b in pairs for k in (*a.by_thread, *b.by_thread)})

        def per_request(served: Served, kind: str) -> float:
            return served.by_thread.get(kind, 0.0) / served.requests * 1e6

        for kind in kinds:
            mine = statistics.median(per_request(a, kind) for a, _ in pairs)
            theirs = statistics.median(per_request(b, kind) for _, b in pairs)
            if max(mine, theirs) >= 0.5:
                print(f"| {name} | {kind} | {mine:.1f} | {theirs:.1f} | {mine - theirs:+.1f} |")
    print(flush=True)


if __name__ == "__main__":
    main()
