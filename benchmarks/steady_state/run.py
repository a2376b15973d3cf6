"""Steady-state benchmark: each sampler against opentelemetry-instrument, and profiling on/off.

Each app is served uninstrumented, under opentelemetry-instrument, under pyrospan-run once
per sampler (``PYROSPAN_SAMPLER``: ``stack``, ``pyspy``; span labels from marker frames
through the relay) and under pyrospan-run with its profiler off
(``PYROSPAN_PROFILING=false``), with the same instrumentation packages, and loaded from
this process over loopback.  The apps: Flask under gunicorn (two sync workers) and
FastAPI under uvicorn (the examples), the FastAPI example's endpoint served by aiohttp
(``aiohttp_app.py``), and a busy async service with realistic stacks
(the attribution benchmark's FastAPI service under uvicorn, its endpoints burning 20
chunks of 0.3 ms with an ``await`` between them, ``--depth`` frames of async layers
below each endpoint), served under pyrospan-run only.  Rounds interleave the variants
so that machine noise falls on all alike.

Printed per variant: requests/s, p99 latency, RSS of the server's processes, and CPU
milliseconds per request (the CPU time of every process of the server, profiler, relay
and exporter threads included, divided by the requests served): steadier than
requests/s on a shared 2-core machine.  Then the medians of the per-round ratios: each
sampler against opentelemetry-instrument (targets: >= 0.97 in requests/s, <= 1.03 in
CPU per request) and profiling on against off, CPU per request (target <= 1.03).

``--pin`` serves on the first CPU and loads from the others, so that the server and the
load do not take turns on each other's cores (the figures move far less from run to
run).  ``--split`` adds each sampler at 1 Hz: what profiling costs there is the span
machinery (marker frames, the label switch, the relay) and the profiler's fixed costs,
and the rest of the on/off ratio is the samples.

    python benchmarks/steady_state/run.py [--rounds 3] [--seconds 6] [--samplers stack,pyspy]
        [--apps flask,fastapi,aiohttp,async] [--variants "NAME;NAME"] [--pin] [--split]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))
from loadgen import (  # noqa: E402
    LoadResult,
    backend_env,
    opentelemetry_instrument_env,
    pin_load_to,
    run_server,
)
from samplers import SAMPLERS, check, sampler_env  # noqa: E402

from pyrospan_launch.receiver.server import Receiver  # noqa: E402

BIN = Path(sys.executable).parent
PYROSPAN = str(BIN / "pyrospan-run")
OTEL = "opentelemetry-instrument"
UNINSTRUMENTED = "uninstrumented"
OFF = "pyrospan-run, profiler off"
FLASK, FASTAPI, AIOHTTP, ASYNC = "flask", "fastapi", "aiohttp", "async"
TITLES = {
    FLASK: "Flask + gunicorn (2 sync workers)",
    FASTAPI: "FastAPI + uvicorn",
    AIOHTTP: "aiohttp (the FastAPI example's endpoint)",
    ASYNC: "busy async service (FastAPI + uvicorn, realistic stacks)",
}
APPS = {
    FLASK: (
        [
            str(BIN / "gunicorn"), "-w", "2", "-b", "127.0.0.1:{port}",
            "--chdir", str(ROOT / "examples" / "flask_app"), "app:app",
        ],
        "/invoice?lines=2000",
    ),
    FASTAPI: (
        [
            str(BIN / "uvicorn"), "--app-dir", str(ROOT / "examples" / "fastapi_app"),
            "--port", "{port}", "--log-level", "warning", "app:app",
        ],
        "/recommendations?products=800",
    ),
    AIOHTTP: (
        [str(BIN / "python"), str(HERE / "aiohttp_app.py"), "{port}"],
        "/recommendations?products=800",
    ),
    ASYNC: (
        [
            str(BIN / "uvicorn"), "--app-dir", str(HERE.parent / "attribution"),
            "--port", "{port}", "--no-access-log", "web_app:app",
        ],
        "/search",
    ),
}  # fmt: skip

Variants = dict[str, tuple[list[str], dict[str, str]]]


def sampler_variant(sampler: str) -> str:
    return f"pyrospan-run, {sampler}"


def slow_variant(sampler: str) -> str:
    return f"pyrospan-run, {sampler} at {SLOW_RATE} Hz"


# A sample rate at which the sampler's per-sample work is next to nothing, all else equal:
# what profiling costs beyond it is the span machinery and the profiler's fixed costs.
SLOW_RATE = 1


def variants_of(app: str, samplers: list[str], depth: int, split: bool = False) -> Variants:
    """Each variant's command and extra environment for ``app``."""
    command, _ = APPS[app]
    pyrospan = [PYROSPAN, *command]
    variants: Variants = {}
    if app != ASYNC:
        variants[UNINSTRUMENTED] = (command, {})
        variants[OTEL] = ([str(BIN / OTEL), *command], opentelemetry_instrument_env())
    for sampler in samplers:
        variants[sampler_variant(sampler)] = (pyrospan, sampler_env(sampler))
        if split:
            slow = {**sampler_env(sampler), "PYROSCOPE_SAMPLE_RATE": str(SLOW_RATE)}
            variants[slow_variant(sampler)] = (pyrospan, slow)
    # Tracing and linking alone: the profiler's whole cost is the difference.
    variants[OFF] = (pyrospan, {"PYROSPAN_PROFILING": "false"})
    if app == ASYNC:
        for name, (cmd, extra) in variants.items():
            variants[name] = (cmd, {**extra, "WEB_DEPTH": str(depth), "WEB_CHUNK_MS": "0.3"})
    return variants


def ratio(a: list[LoadResult], b: list[LoadResult], per_request: bool = True) -> float:
    """Median of the per-round ratios a / b: CPU per request, or requests/s."""
    if per_request:
        return statistics.median(
            x.cpu_ms_per_request / y.cpu_ms_per_request for x, y in zip(a, b, strict=True)
        )
    return statistics.median(x.rate / y.rate for x, y in zip(a, b, strict=True))


def print_app(app: str, results: dict[str, list[LoadResult]], samplers: list[str]) -> None:
    print(f"{TITLES[app]}\n")
    print("| | requests/s | p99 ms | RSS MB | CPU ms per request |")
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        print(
            f"| {name} | {statistics.median(r.rate for r in runs):.0f} | "
            f"{statistics.median(r.p99_ms for r in runs):.1f} | "
            f"{statistics.median(r.rss_mb for r in runs):.0f} | "
            f"{statistics.median(r.cpu_ms_per_request for r in runs):.3f} |"
        )
    print()
    if OTEL in results:
        theirs = results[OTEL]
        for name in [*map(sampler_variant, samplers), OFF]:
            if name not in results:
                continue
            print(
                f"{name} / {OTEL}: CPU per request x{ratio(results[name], theirs):.3f} "
                f"(target <= 1.03), requests/s x{ratio(results[name], theirs, False):.3f} "
                "(target >= 0.97)"
            )
    for sampler in samplers:
        if sampler_variant(sampler) not in results or OFF not in results:
            continue
        on = results[sampler_variant(sampler)]
        print(
            f"profiling on / off, {sampler}: CPU per request "
            f"x{ratio(on, results[OFF]):.3f} (target <= 1.03)"
        )
        slow = results.get(slow_variant(sampler))
        if slow:
            print(
                f"  of which, {sampler}: span machinery and fixed costs ({SLOW_RATE} Hz / off) "
                f"x{ratio(slow, results[OFF]):.3f}; the samples (default rate / {SLOW_RATE} Hz) "
                f"x{ratio(on, slow):.3f}"
            )
    print(flush=True)


def pinned_cpus() -> set[int]:
    """The server's CPU under ``--pin``; this process moves to the others."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--pin needs two CPUs: one for the server, one for the load")
    pin_load_to(set(cpus[1:]))
    return {cpus[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--samplers", default=",".join(SAMPLERS))
    parser.add_argument("--depth", type=int, default=30, help="the async service's layers")
    parser.add_argument("--apps", default=",".join(APPS), help="flask,fastapi,aiohttp,async")
    parser.add_argument(
        "--variants", default="", help="only these variants (names as printed), separated by ';'"
    )
    parser.add_argument(
        "--split",
        action="store_true",
        help=f"also each sampler at {SLOW_RATE} Hz: the span machinery apart from the samples",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="the server on the first CPU, the load and the receiver on the others",
    )
    args = parser.parse_args()
    samplers = [s for s in args.samplers.split(",") if s]
    check(samplers)
    apps = [app for app in APPS if app in args.apps.split(",")]
    server_cpus = pinned_cpus() if args.pin else None
    with Receiver() as receiver:
        env = backend_env(receiver.url, "steady")
        pinned = (
            f", the server on CPU {min(server_cpus)} and the load on the others"
            if server_cpus
            else ""
        )
        print(
            f"Steady state, median of {args.rounds} interleaved rounds of "
            f"{args.seconds:g} s, 8 keep-alive clients on loopback{pinned}\n"
        )
        for app in apps:
            path = APPS[app][1]
            variants = variants_of(app, samplers, args.depth, args.split)
            if args.variants:
                wanted = {name.strip() for name in args.variants.split(";")}
                variants = {name: v for name, v in variants.items() if name in wanted}
            results: dict[str, list[LoadResult]] = {name: [] for name in variants}
            for round_number in range(args.rounds):
                order = list(variants)
                if round_number % 2:
                    order.reverse()
                for name in order:
                    variant_command, variant_env = variants[name]
                    result = run_server(
                        variant_command,
                        {**env, **variant_env},
                        path,
                        args.seconds,
                        server_cpus=server_cpus,
                    )
                    results[name].append(result)
                    print(
                        f"  {app} round {round_number + 1} {name}: {result.rate:.0f} req/s, "
                        f"{result.cpu_ms_per_request:.3f} CPU ms/req",
                        file=sys.stderr,
                        flush=True,
                    )
            print_app(app, results, samplers)


if __name__ == "__main__":
    main()
