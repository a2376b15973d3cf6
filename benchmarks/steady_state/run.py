"""Steady-state benchmark: Flask under gunicorn and FastAPI under uvicorn, five ways.

Each app is served uninstrumented, under opentelemetry-instrument, under pyrospan-run
(tracing, profiling and span linking, span labels from marker frames through the relay),
under pyrospan-run with thread-tag labels (so that the relay's share shows) and under
pyrospan-run with its profiler off (so that the profiler's own share shows), with the
same instrumentation packages, and loaded from this process over loopback.  Rounds
interleave the five so that machine noise falls on all alike.  Printed per variant:
requests/s, p99 latency, RSS of the server's processes, and CPU-seconds per request (the
CPU time of every process of the server, profiler and exporter threads included, divided
by the requests served): steadier than requests/s on a shared 2-core machine.  Targets:
pyrospan-run >= 0.97 x opentelemetry-instrument in requests/s, and <= 1.03 x in CPU per
request.

    python benchmarks/steady_state/run.py [--rounds 5] [--seconds 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))
from loadgen import LoadResult, clean_env, opentelemetry_instrument_env, run_server  # noqa: E402

from pyrospan_launch.receiver.server import Receiver  # noqa: E402

BIN = Path(sys.executable).parent
APPS = {
    "Flask + gunicorn (2 sync workers)": (
        [
            str(BIN / "gunicorn"),
            "-w",
            "2",
            "-b",
            "127.0.0.1:{port}",
            "--chdir",
            str(ROOT / "examples" / "flask_app"),
            "app:app",
        ],
        "/invoice?lines=2000",
    ),
    "FastAPI + uvicorn": (
        [
            str(BIN / "uvicorn"),
            "--app-dir",
            str(ROOT / "examples" / "fastapi_app"),
            "--port",
            "{port}",
            "--log-level",
            "warning",
            "app:app",
        ],
        "/recommendations?products=800",
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    with Receiver() as receiver:
        env = clean_env(
            OTEL_SERVICE_NAME="steady",
            PYROSCOPE_SERVER_ADDRESS=receiver.url,
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
        )
        print(
            f"Steady state, median of {args.rounds} interleaved rounds of "
            f"{args.seconds:.0f} s, 8 keep-alive clients on loopback\n"
        )
        for app, (command, path) in APPS.items():
            pyrospan = [str(BIN / "pyrospan-run"), *command]
            variants: dict[str, tuple[list[str], dict[str, str]]] = {
                "uninstrumented": (command, {}),
                "opentelemetry-instrument": (
                    [str(BIN / "opentelemetry-instrument"), *command],
                    opentelemetry_instrument_env(),
                ),
                "pyrospan-run": (pyrospan, {}),
                # Span labels from thread tags: no relay, four tag calls per task step.
                "pyrospan-run, tags": (pyrospan, {"PYROSPAN_SPAN_LABELS": "tags"}),
                # Tracing and linking alone: what the profiler's sampling costs shows as
                # the difference to the row above.
                "pyrospan-run, profiler off": (pyrospan, {"PYROSPAN_PROFILING": "false"}),
            }
            results: dict[str, list[LoadResult]] = {name: [] for name in variants}
            for round_number in range(args.rounds):
                order = list(variants)
                if round_number % 2:
                    order.reverse()
                for name in order:
                    variant_command, variant_env = variants[name]
                    result = run_server(variant_command, {**env, **variant_env}, path, args.seconds)
                    results[name].append(result)
                    print(
                        f"  {app} round {round_number + 1} {name}: {result.rate:.0f} req/s, "
                        f"{result.cpu_ms_per_request:.3f} CPU ms/req",
                        file=sys.stderr,
                        flush=True,
                    )
            print(f"{app}\n")
            print("| | requests/s | p99 ms | RSS MB | CPU ms per request |")
            print("|---|---|---|---|---|")
            for name, runs in results.items():
                print(
                    f"| {name} | {statistics.median(r.rate for r in runs):.0f} | "
                    f"{statistics.median(r.p99_ms for r in runs):.1f} | "
                    f"{statistics.median(r.rss_mb for r in runs):.0f} | "
                    f"{statistics.median(r.cpu_ms_per_request for r in runs):.3f} |"
                )
            ours, theirs = results["pyrospan-run"], results["opentelemetry-instrument"]
            rate = statistics.median(a.rate / b.rate for a, b in zip(ours, theirs, strict=True))
            cpu = statistics.median(
                a.cpu_ms_per_request / b.cpu_ms_per_request
                for a, b in zip(ours, theirs, strict=True)
            )
            without_profiler = statistics.median(
                a.cpu_ms_per_request / b.cpu_ms_per_request
                for a, b in zip(results["pyrospan-run, profiler off"], theirs, strict=True)
            )
            tags = statistics.median(
                a.cpu_ms_per_request / b.cpu_ms_per_request
                for a, b in zip(results["pyrospan-run, tags"], theirs, strict=True)
            )
            print(
                f"\npyrospan-run / opentelemetry-instrument: requests/s x{rate:.3f} "
                f"(target >= 0.97), CPU per request x{cpu:.3f} (target <= 1.03); "
                f"with tags x{tags:.3f} (frames - tags: the relay's share, less the tag "
                f"calls it saves); profiler off: CPU per request x{without_profiler:.3f}\n",
                flush=True,
            )


if __name__ == "__main__":
    main()
