"""Instructions per request on the app's thread: what profiling adds, counted instead of timed.

``in_process.py`` times the app's thread, and its ratios still move by a percent or two
from run to run.  This counts the machine instructions that thread executes, under
valgrind's callgrind, which gives the same count for the same run whatever else the
machine does.  Each variant drives the example app in-process (``in_process.py
--drive``) twice, for two numbers of requests; the difference between the two counts,
divided by the difference in requests, is the cost of one request with the warm-up and
start-up taken out.

A count is not a time: the app's own work may run many instructions a cycle where a
wrapper's calls, allocations and dictionary lookups run few, so a share of instructions
can be well below the same share of CPU time.  Use this to see how much work a change
adds or removes, and ``in_process.py --paired`` for what it costs.

The Stack sampler cannot run under callgrind (its CPU-timer signals stop valgrind with an
assertion), so profiling on is py-spy at 1 Hz: the same span machinery (marker frames,
the label switch, linking, thread tags) with next to no sampling.

    python benchmarks/span_cost/instructions.py [--app flask|fastapi] [--requests 100,600]

Needs valgrind (Debian's package).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BIN = Path(sys.executable).parent
IN_PROCESS = HERE / "in_process.py"

VARIANTS: dict[str, dict[str, str]] = {
    "profiling off": {"PYROSPAN_PROFILING": "false"},
    "py-spy at 1 Hz, marker frames": {"PYROSPAN_SAMPLER": "pyspy", "PYROSCOPE_SAMPLE_RATE": "1"},
}


def main_thread_instructions(env: dict[str, str], app: str, requests: int) -> int:
    """Instructions the driving thread ran for ``requests`` requests (after 300 of warm-up)."""
    with tempfile.TemporaryDirectory(prefix="pyrospan-callgrind-") as folder:
        out = Path(folder) / "cg"
        command = [
            str(BIN / "pyrospan-run"),
            "valgrind", "--tool=callgrind", "--separate-threads=yes",
            f"--callgrind-out-file={out}.%p",
            sys.executable, str(IN_PROCESS), "--drive", "--app", app,
            "--requests", str(requests),
        ]  # fmt: skip
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
        # With --separate-threads, thread 1 (the main thread, which drives) is file -01.
        main = sorted(Path(folder).glob("cg.*-01"))
        if len(main) != 1:
            raise SystemExit(f"callgrind wrote no file for the main thread in {folder}")
        for line in main[0].read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise SystemExit("callgrind's output had no instruction total")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", choices=("flask", "fastapi"), default="flask")
    parser.add_argument("--requests", default="100,600", help="the two request counts")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("instructions.py needs valgrind: apt-get install valgrind")
    small, large = (int(n) for n in args.requests.split(","))
    if large <= small:
        raise SystemExit("--requests: the second count must be the larger")

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE.parent))
    from loadgen import backend_env

    from pyrospan_launch.receiver.server import Receiver

    with Receiver() as receiver:
        common = backend_env(receiver.url, "instructions")
        runs = [(name, n) for name in VARIANTS for n in (small, large)]
        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
            counts = dict(
                zip(
                    runs,
                    pool.map(
                        lambda run: main_thread_instructions(
                            {**common, **VARIANTS[run[0]]}, args.app, run[1]
                        ),
                        runs,
                    ),
                    strict=True,
                )
            )
    per_request = {
        name: (counts[(name, large)] - counts[(name, small)]) / (large - small) for name in VARIANTS
    }
    off = per_request["profiling off"]
    print(
        f"{args.app}, instructions per request on the app's thread (callgrind; "
        f"{large} against {small} requests)\n"
    )
    print("| variant | instructions per request | ÷ profiling off |")
    print("|---|---|---|")
    for name, value in per_request.items():
        print(f"| {name} | {value:,.0f} | {value / off:.4f} |")


if __name__ == "__main__":
    main()
