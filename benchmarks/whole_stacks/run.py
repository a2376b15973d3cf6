"""How many of pyroscope-io's Stack samples reach the root of their thread, without us.

pyrospan-run labels a sample by a marker frame near the root of its stack: a sample
whose stack was cut short on the way up loses its label.  This measures the sampler
alone, with no pyrospan-run and no marker (program.py): asyncio tasks burn CPU in short
steps below layers of coroutine frames, and every CPU sample of the burning function is
checked for the program's outermost frame (``<module>``).  A sample that lacks it ends
at a coroutine frame partway up: the sampler read that frame after the task had
suspended (the step ended during the read).

Each round runs every configuration once, in alternating order; medians are printed.
On Python 3.12+ ``--wall-loop`` also runs the sampler without CPU timers, as it runs on
3.10 and 3.11.

    python benchmarks/whole_stacks/run.py [--rounds 3] [--depths 5,60] [--step-ms 0.1]
        [--wall-loop]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from recording import RecordingReceiver  # noqa: E402

from pyrospan_launch.receiver.records import ProfileSample  # noqa: E402

ROOT_FRAME = "<module>"
BURNING = "burn"


def whole_share(samples: list[ProfileSample]) -> float:
    """Of the burning function's CPU, the share whose stack reaches the program's root."""
    whole = total = 0
    for sample in samples:
        if BURNING not in sample.stack:
            continue
        total += sample.values[0]
        if sample.stack[0] == ROOT_FRAME:
            whole += sample.values[0]
    return whole / total if total else float("nan")


def one_run(depth: int, step_ms: float, wall_loop: bool) -> float:
    with RecordingReceiver() as receiver:
        command = [sys.executable, str(HERE / "program.py"), receiver.url]
        command += ["--depth", str(depth), "--step-ms", str(step_ms)]
        if wall_loop:
            command.append("--wall-loop")
        subprocess.run(command, check=True, timeout=300)
        receiver.wait_for(lambda r: any(BURNING in s.stack for s in r.samples()), timeout=30)
        return whole_share(receiver.samples())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--depths", default="5,60")
    parser.add_argument("--step-ms", type=float, default=0.1)
    parser.add_argument("--wall-loop", action="store_true")
    args = parser.parse_args()
    depths = [int(d) for d in args.depths.split(",") if d]
    loops = [False]
    if sys.version_info >= (3, 12):
        loops = [False, True] if args.wall_loop else [False]
    configs = [(depth, loop) for depth in depths for loop in loops]
    shares: dict[tuple[int, bool], list[float]] = {c: [] for c in configs}
    for round_number in range(args.rounds):
        order = configs if round_number % 2 == 0 else list(reversed(configs))
        for depth, loop in order:
            share = one_run(depth, args.step_ms, loop)
            shares[(depth, loop)].append(share)
            print(
                f"round {round_number + 1} depth {depth} "
                f"{'wall loop' if loop or sys.version_info < (3, 12) else 'CPU timers'}: "
                f"{share * 100:.1f}% whole",
                file=sys.stderr,
                flush=True,
            )
    version = ".".join(map(str, sys.version_info[:2]))
    print(
        f"\npyroscope-io's Stack sampler alone, Python {version}, 6 asyncio tasks, "
        f"{args.step_ms:g} ms steps; median of {args.rounds} rounds (min to max)\n"
    )
    print("| depth | sampling | samples whose stack reaches the root |")
    print("|---|---|---|")
    for (depth, loop), values in shares.items():
        mode = "wall-clock loop" if loop or sys.version_info < (3, 12) else "CPU timers"
        print(
            f"| {depth} | {mode} | {statistics.median(values) * 100:.1f}% "
            f"({min(values) * 100:.1f} to {max(values) * 100:.1f}) |"
        )


if __name__ == "__main__":
    main()
