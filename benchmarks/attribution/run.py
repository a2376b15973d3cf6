"""Attribution benchmark: pyrospan-run against pyroscope-otel's processor, in one interleaved run.

For each scenario and round it runs the workload once under pyrospan-run and once with the
documented manual setup (pyroscope-io + ``pyroscope.otel.PyroscopeSpanProcessor``), each
against a fresh local receiver, and scores every CPU sample.  Rounds alternate the two so
that machine noise falls on both alike.

    python benchmarks/attribution/run.py [--rounds 3] [--scenarios asyncio,threadpool,...]

Targets: asyncio >= 98%, hand-off >= 95%, threads >= 99% precision, and no
sample with two span_ids.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from judge import Score  # noqa: E402
from recording import RecordingReceiver  # noqa: E402
from scored import run_and_score  # noqa: E402

SCENARIOS = [
    "asyncio",
    "uvloop",
    "threadpool",
    "to_thread",
    "run_in_executor",
    "threads",
    "cross_thread",
]
TARGET = {
    "asyncio": 0.98,
    "uvloop": 0.98,
    "threadpool": 0.95,
    "to_thread": 0.95,
    "run_in_executor": 0.95,
    "threads": 0.99,
    "cross_thread": 0.99,
}


def one_run(scenario: str, mode: str, spans: int, steps: int) -> Score:
    with RecordingReceiver() as receiver:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PYROSPAN_", "PYROSCOPE_", "OTEL_"))
        }
        env.update(
            PYROSCOPE_SERVER_ADDRESS=receiver.url,
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
            PYROSCOPE_UPLOAD_INTERVAL="1",
            OTEL_SERVICE_NAME="attribution",
        )
        command = [
            sys.executable,
            str(HERE / "workload.py"),
            scenario,
            "--mode",
            mode,
            "--spans",
            str(spans),
            "--steps",
            str(steps),
        ]
        if mode == "pyrospan":
            command = [str(Path(sys.executable).with_name("pyrospan-run")), *command]
        return run_and_score(receiver, command, env, f"{mode} {scenario}")


def percent(value: float) -> str:
    return "  n/a" if value != value else f"{value * 100:5.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--spans", type=int, default=4)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    results: dict[tuple[str, str], list[Score]] = {}
    for round_number in range(args.rounds):
        for scenario in scenarios:
            modes = ["pyrospan", "reference"]
            if round_number % 2:
                modes.reverse()
            for mode in modes:
                result = one_run(scenario, mode, args.spans, args.steps)
                results.setdefault((scenario, mode), []).append(result)
                print(
                    f"round {round_number + 1} {scenario:<16} {mode:<9} "
                    f"precision {percent(result.precision)} recall {percent(result.recall)}",
                    file=sys.stderr,
                    flush=True,
                )

    print(
        f"\nAttribution, median of {args.rounds} interleaved rounds "
        f"({args.spans} root spans x {args.steps} CPU slices of 10 ms each)\n"
    )
    print(
        "| scenario | target | pyrospan-run precision | recall | two span_ids | "
        "pyroscope-otel precision | recall | two span_ids |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for scenario in scenarios:
        row = [scenario, f">= {TARGET[scenario] * 100:.0f}%"]
        for mode in ("pyrospan", "reference"):
            runs = results[(scenario, mode)]
            precision = statistics.median(
                r.precision if r.precision == r.precision else 0.0 for r in runs
            )
            recall = statistics.median(r.recall for r in runs)
            conflicts = sum(r.conflicts for r in runs)
            if scenario == "cross_thread":
                # What matters: unrelated work after the span ended elsewhere is unlabelled.
                clean = statistics.median(1 - r.unrelated_labelled for r in runs)
                row += [f"{percent(clean)} clean", percent(recall), str(conflicts)]
            else:
                row += [percent(precision), percent(recall), str(conflicts)]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
