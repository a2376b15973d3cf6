"""Request rate of an asyncio app under uvicorn, pyrospan-run's label switching on vs off."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from loadgen import LoadResult, clean_env, run_server

from pyrospan_launch.receiver.server import Receiver

HERE = Path(__file__).resolve().parent


def base_env(receiver: Receiver) -> dict[str, str]:
    return clean_env(
        PYROSCOPE_SERVER_ADDRESS=receiver.url,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_SERVICE_NAME="bench",
    )


def compare_switching(rounds: int, seconds: float) -> None:
    """uvicorn + FastAPI under pyrospan-run, label switching on vs off."""
    launcher = str(Path(sys.executable).with_name("pyrospan-run"))
    command = [
        launcher,
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(HERE),
        "--port",
        "{port}",
        "--log-level",
        "warning",
        "asgi_app:app",
    ]
    results: dict[str, list[LoadResult]] = {"switching on": [], "switching off": []}
    with Receiver() as receiver:
        variants = {
            "switching on": base_env(receiver),
            "switching off": {**base_env(receiver), "OTEL_PYTHON_CONTEXT": "contextvars_context"},
        }
        for round_number in range(rounds):
            order = list(variants)
            if round_number % 2:
                order.reverse()
            for name in order:
                results[name].append(run_server(command, variants[name], "/item", seconds))
                last = results[name][-1]
                print(
                    f"round {round_number + 1} {name}: {last.rate:.0f} req/s, "
                    f"{last.cpu_ms_per_request:.3f} CPU ms/req",
                    file=sys.stderr,
                    flush=True,
                )
    print(
        f"uvicorn + FastAPI under pyrospan-run, median of {rounds} interleaved rounds "
        f"of {seconds:.0f} s\n"
    )
    print("| | requests/s | p99 ms | CPU ms per request | RSS MB |")
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        print(
            f"| {name} | {statistics.median(r.rate for r in runs):.0f} | "
            f"{statistics.median(r.p99_ms for r in runs):.1f} | "
            f"{statistics.median(r.cpu_ms_per_request for r in runs):.3f} | "
            f"{statistics.median(r.rss_mb for r in runs):.0f} |"
        )
    on, off = results["switching on"], results["switching off"]
    rate = statistics.median(a.rate / b.rate for a, b in zip(on, off, strict=True))
    cpu = statistics.median(
        a.cpu_ms_per_request / b.cpu_ms_per_request for a, b in zip(on, off, strict=True)
    )
    print(
        f"\nswitching on / off: requests/s x{rate:.3f}, CPU per request x{cpu:.3f} "
        f"(target: requests/s >= 0.97, CPU per request <= 1.03)"
    )
