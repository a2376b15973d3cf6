"""How much CPU a span's flame graph shows, against the CPU the span really used.

Each root span runs in a multiprocessing pool worker under pyrospan-run and burns a
fixed amount of thread CPU; the receiver collects the profile, and each span's linked
CPU (samples labelled with its span_id, in its own process, in the workload function)
is compared with the thread CPU it used.  pyroscope-io samples at 100 Hz and counts a
thread as on-CPU when it is running or runnable, so with more busy threads than cores
the spread is wide both ways.  This sets the bound the worker tests use
(``WORKER_MIN_LINKED_MS`` in tests/test_e2e_processes.py) and backs the README's note.

    python benchmarks/sample_spread/run.py [--runs 10] [--workers 2] [--work-ms 300]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from loadgen import clean_env  # noqa: E402
from recording import RecordingReceiver  # noqa: E402

TASKS = 8


def one_run(workers: int, work_ms: float) -> list[tuple[float, float]]:
    """(thread CPU used, CPU shown) in ms for each span of one run."""
    with RecordingReceiver() as receiver:
        env = clean_env(
            PYROSCOPE_SERVER_ADDRESS=receiver.url,
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
        )
        launcher = shutil.which("pyrospan-run", path=os.path.dirname(sys.executable))
        command = [launcher or "pyrospan-run", sys.executable, str(HERE / "workload.py")]
        done = subprocess.run(
            [*command, str(workers), str(TASKS), str(work_ms)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        tasks = [json.loads(line) for line in done.stdout.splitlines()]
        # Each worker sends its last window as it ends; wait until every span shows up.
        receiver.wait_for(
            lambda r: all(r.samples_with_label("span_id", t["span_id"]) for t in tasks), 10
        )
        pairs = []
        for task in tasks:
            shown_ns = sum(
                sample.values[0]
                for sample in receiver.samples_with_label("span_id", task["span_id"])
                if sample.labels.get("pid") == str(task["pid"]) and "spread_work" in sample.stack
            )
            pairs.append((task["cpu_ms"], shown_ns / 1e6))
        return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work-ms", type=float, default=300)
    args = parser.parse_args()
    ratios: list[float] = []
    shown_all: list[float] = []
    for run_number in range(args.runs):
        pairs = one_run(args.workers, args.work_ms)
        shown = [s for _, s in pairs]
        shown_all += shown
        ratios += [s / used for used, s in pairs]
        print(f"run {run_number + 1}: shown ms per span {sorted(round(s) for s in shown)}")
    ratios.sort()
    print(
        f"\n{len(shown_all)} spans, {args.workers} workers on {os.cpu_count()} cores, "
        f"{args.work_ms:.0f} ms of thread CPU each:\n"
        f"  shown CPU per span: min {min(shown_all):.0f} ms, max {max(shown_all):.0f} ms\n"
        f"  shown / used: min {ratios[0]:.2f}, median {ratios[len(ratios) // 2]:.2f}, "
        f"max {ratios[-1]:.2f}"
    )


if __name__ == "__main__":
    main()
