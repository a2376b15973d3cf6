"""Step-length sweep: span labels from marker frames against thread tags, in one interleaved run.

For each CPU length per task step (or pool item, or chunk between awaits), each scenario
runs once with ``PYROSPAN_SPAN_LABELS=frames`` and once with ``tags`` per round, the
order alternating between rounds, each against a fresh receiver; every CPU sample is
scored (judge.py).  Scenarios:

* ``asyncio``: ``--spans`` (6) concurrent root spans on one event loop, each burning
  300 ms of CPU in steps of the given length, yielding between steps;
* ``pool``: as many root spans, each on its own thread, handing items of the given
  length to a shared two-thread pool;
* ``web``: a FastAPI service under uvicorn, 12 keep-alive clients, three async
  endpoints each burning 20 chunks of the given length with an ``await`` between them
  (judged by endpoint: a sample is right when it carries a span of its endpoint).

    python benchmarks/attribution/sweep.py [--rounds 3] [--lengths 0.1,0.3,1,3,10]

Targets at every length: precision >= 98%, recall >= 95%, no sample with two span_ids.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from judge import Score, score  # noqa: E402
from recording import RecordingReceiver  # noqa: E402
from web import receiver_env, run_web  # noqa: E402

METHODS = ("frames", "tags")
SCENARIOS = ("asyncio", "pool", "web")
CPU_PER_SPAN_MS = 300.0


def workload_run(scenario: str, method: str, spans: int, length_ms: float) -> Score:
    with RecordingReceiver() as receiver:
        env = receiver_env(
            receiver,
            PYROSCOPE_UPLOAD_INTERVAL="1",
            OTEL_SERVICE_NAME="sweep",
            PYROSPAN_SPAN_LABELS=method,
        )
        steps = max(1, round(CPU_PER_SPAN_MS / length_ms))
        command = [
            str(Path(sys.executable).with_name("pyrospan-run")),
            sys.executable,
            str(HERE / "workload.py"),
            "pool_items" if scenario == "pool" else scenario,
            "--spans",
            str(spans),
            "--steps",
            str(steps),
            "--slice-ms",
            str(length_ms),
        ]
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"{method} {scenario} {length_ms} ms failed:\n{done.stderr}")
        owner = json.loads(done.stdout.splitlines()[-1])["owner"]
        receiver.wait_for(lambda r: {s.span_id for s in r.spans} >= set(owner), timeout=30)
        return score(receiver.samples(), owner)


def one_run(scenario: str, method: str, spans: int, length_ms: float) -> Score:
    if scenario == "web":
        return run_web(length_ms, PYROSPAN_SPAN_LABELS=method)[0]
    return workload_run(scenario, method, spans, length_ms)


def percent(value: float) -> str:
    return "n/a" if value != value else f"{value * 100:.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--spans", type=int, default=6)
    parser.add_argument("--lengths", default="0.1,0.3,1,3,10", help="ms of CPU per step")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args()
    lengths = [float(x) for x in args.lengths.split(",")]
    scenarios = args.scenarios.split(",")
    results: dict[tuple[str, float, str], list[Score]] = {}
    for round_number in range(args.rounds):
        for scenario in scenarios:
            for length in lengths:
                methods = list(METHODS) if round_number % 2 == 0 else list(reversed(METHODS))
                for method in methods:
                    result = one_run(scenario, method, args.spans, length)
                    results.setdefault((scenario, length, method), []).append(result)
                    print(
                        f"round {round_number + 1} {scenario:<8} {length:>5} ms {method:<6} "
                        f"precision {percent(result.precision)} recall {percent(result.recall)} "
                        f"two span_ids {result.conflicts}",
                        file=sys.stderr,
                        flush=True,
                    )

    print(
        f"\nSpan labels by step length, median of {args.rounds} interleaved rounds "
        f"({args.spans} root spans on one loop or pool; web: 12 clients)\n"
    )
    print(
        "| scenario | CPU per step | frames precision | recall | two span_ids | "
        "tags precision | recall | two span_ids |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for scenario in scenarios:
        for length in lengths:
            row = [scenario, f"{length:g} ms"]
            for method in METHODS:
                runs = results[(scenario, length, method)]
                precision = statistics.median(
                    r.precision if r.precision == r.precision else 0.0 for r in runs
                )
                recall = statistics.median(r.recall for r in runs)
                row += [percent(precision), percent(recall), str(sum(r.conflicts for r in runs))]
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
