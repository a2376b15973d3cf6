"""Span labels by stack depth and sampler (or by label method), in one interleaved run.

Each configuration runs once per round against a fresh receiver, and every CPU sample of
a span's burning function is scored (judge.py).  A configuration is a scenario, a CPU
length per step, a depth (frames between the span's marker frame and the function that
burns its CPU: layers of calls, as services have) and a variant: the sampler
(``PYROSPAN_SAMPLER``: ``stack`` or ``pyspy``) and how span labels reach samples
(``PYROSPAN_SPAN_LABELS``: ``frames`` or ``tags``).  Rounds interleave all of them, the
order of depths and variants reversed every other round, so that the machine's noise
falls on all alike.  Scenarios:

* ``asyncio``: ``--spans`` (6) concurrent root spans on one event loop, each burning
  300 ms of CPU in steps of the given length, yielding between steps, below async
  layers that all suspend at each step's ``await``;
* ``uvloop``: the same on uvloop's event loop;
* ``asyncio_calls``: as ``asyncio``, with the layers plain calls inside each step (a
  step that runs a stack of synchronous code, as a CPU-bound helper does);
* ``pool``: as many root spans, each on its own thread, handing items of the given
  length to a shared two-thread pool, each item below plain layers;
* ``web``: a FastAPI service under uvicorn, 12 keep-alive clients, three async
  endpoints each burning 20 chunks of the given length with an ``await`` between them,
  below async layers (judged by endpoint: a sample is right when it carries a span of
  its endpoint).

    python benchmarks/attribution/sweep.py [--rounds 3] [--depths 5,30,60,100]
        [--samplers stack,pyspy] [--labels frames] [--lengths 0.1]
    python benchmarks/attribution/sweep.py --samplers pyspy --labels frames,tags \\
        --depths 5 --lengths 0.1,0.3,1,3,10   # marker frames against thread tags

Printed: per scenario, length and depth, each variant's median precision (of labelled
samples, the share labelled with the right span), recall (of the function's samples,
the share labelled with the right span) and the samples with two span_ids in all rounds.
Targets: precision >= 99.5%, recall >= 99%, no sample with two span_ids.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from judge import Score  # noqa: E402
from recording import RecordingReceiver  # noqa: E402
from samplers import INFO_NAMES, SAMPLERS, check, info_sampler, sampler_env  # noqa: E402
from scored import run_and_score  # noqa: E402
from web import receiver_env, run_web  # noqa: E402

LABELS = ("frames", "tags")
SCENARIOS = ("asyncio", "uvloop", "asyncio_calls", "pool", "web")
CPU_PER_SPAN_MS = 300.0

Variant = tuple[str, str]  # (sampler, span labels)


def variant_env(variant: Variant) -> dict[str, str]:
    sampler, labels = variant
    return {**sampler_env(sampler), "PYROSPAN_SPAN_LABELS": labels}


def workload_run(
    scenario: str, variant: Variant, spans: int, length_ms: float, depth: int
) -> Score:
    with RecordingReceiver() as receiver:
        env = receiver_env(
            receiver,
            PYROSCOPE_UPLOAD_INTERVAL="1",
            OTEL_SERVICE_NAME="sweep",
            **variant_env(variant),
        )
        steps = max(1, round(CPU_PER_SPAN_MS / length_ms))
        command = [
            str(Path(sys.executable).with_name("pyrospan-run")),
            sys.executable,
            str(HERE / "workload.py"),
            "pool_items" if scenario == "pool" else scenario,
            "--spans", str(spans),
            "--steps", str(steps),
            "--slice-ms", str(length_ms),
            "--depth", str(depth),
        ]  # fmt: skip
        return run_and_score(receiver, command, env, f"{variant} {scenario} {length_ms} ms")


def one_run(scenario: str, variant: Variant, spans: int, length_ms: float, depth: int) -> Score:
    if scenario == "web":
        sampler, labels = variant
        return run_web(
            length_ms, depth=depth, PYROSPAN_SAMPLER=sampler, PYROSPAN_SPAN_LABELS=labels
        )[0]
    return workload_run(scenario, variant, spans, length_ms, depth)


def percent(value: float) -> str:
    return "n/a" if value != value else f"{value * 100:.1f}%"


def variant_name(variant: Variant, variants: list[Variant]) -> str:
    """The variant's column heading: only what differs between the variants of the run."""
    parts = []
    if len({v[0] for v in variants}) > 1:
        parts.append(variant[0])
    if len({v[1] for v in variants}) > 1:
        parts.append(variant[1])
    return " ".join(parts) or f"{variant[0]} {variant[1]}"


def split(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--spans", type=int, default=6)
    parser.add_argument("--lengths", default="0.1", help="ms of CPU per step")
    parser.add_argument("--depths", default="5,30,60,100", help="frames between marker and CPU")
    parser.add_argument("--samplers", default=",".join(SAMPLERS))
    parser.add_argument("--labels", default="frames", help="span label methods: frames,tags")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args()
    lengths = [float(x) for x in split(args.lengths)]
    depths = [int(x) for x in split(args.depths)]
    scenarios = split(args.scenarios)
    check(split(args.samplers))
    variants: list[Variant] = []
    for sampler, labels in itertools.product(split(args.samplers), split(args.labels)):
        # pyrospan-run may choose another sampler for these labels (thread tags need py-spy).
        said = info_sampler(sampler, PYROSPAN_SPAN_LABELS=labels)
        if said == INFO_NAMES[sampler] or (not said and sampler == "pyspy"):
            variants.append((sampler, labels))
        else:
            print(f"skipped {sampler} with {labels}: --info says {said}", file=sys.stderr)
    results: dict[tuple[str, float, int, Variant], list[Score]] = {}
    for round_number in range(args.rounds):
        backwards = round_number % 2 == 1
        for scenario in scenarios:
            for length in lengths:
                for depth in reversed(depths) if backwards else depths:
                    for variant in reversed(variants) if backwards else variants:
                        result = one_run(scenario, variant, args.spans, length, depth)
                        results.setdefault((scenario, length, depth, variant), []).append(result)
                        print(
                            f"round {round_number + 1} {scenario:<8} {length:>5} ms depth "
                            f"{depth:>3} {' '.join(variant):<13} precision "
                            f"{percent(result.precision)} recall {percent(result.recall)} "
                            f"two span_ids {result.conflicts}",
                            file=sys.stderr,
                            flush=True,
                        )

    print(
        f"\nSpan labels by depth, median of {args.rounds} interleaved rounds "
        f"({args.spans} root spans on one loop or pool; web: 12 clients); depth: frames "
        "between the marker and the burning function\n"
    )
    names = [variant_name(v, variants) for v in variants]
    heading = ["scenario", "CPU per step", "depth"]
    for name in names:
        heading += [f"{name}: precision", "recall", "two span_ids"]
    print("| " + " | ".join(heading) + " |")
    print("|" + "---|" * len(heading))
    for scenario in scenarios:
        for length in lengths:
            for depth in depths:
                row = [scenario, f"{length:g} ms", str(depth)]
                for variant in variants:
                    runs = results[(scenario, length, depth, variant)]
                    # A run with no labelled sample has no precision: left out, n/a if all.
                    labelled = [r.precision for r in runs if r.precision == r.precision]
                    precision = statistics.median(labelled) if labelled else float("nan")
                    recall = statistics.median(r.recall for r in runs)
                    conflicts = sum(r.conflicts for r in runs)
                    row += [percent(precision), percent(recall), str(conflicts)]
                print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
