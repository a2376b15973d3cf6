"""CPU in the profiles against the CPU a traced program really used, per sampler.

A traced program (program.py) burns known CPU in root spans under pyrospan-run and
measures the thread CPU it used (``time.thread_time()``); its profiles go to a local
receiver that decodes the Pyroscope push API.  The CPU the profiles show (the samples'
values: samples times the interval) is divided by the CPU used, for the whole program
(every sample with ``work_main`` in its stack) and for each root span (the samples
labelled with its ``span_id``), alone and beside ``--hogs`` CPU hogs (busy loops in
processes of their own; default: one per core, so the program waits for a core as on a
busy node or in a throttled container).  One row per sampler also runs in wall-clock
mode (``PYROSCOPE_ONCPU=false``) beside the hogs, where the profiles should show wall
time: its last column divides by the wall time instead.  Rounds interleave everything.

``--idle SECONDS`` (default 10; 0 skips it) then measures the CPU of idle traced
processes, per sampler and with ``PYROSPAN_PROFILING=false``, run side by side, as % of
a core (read from /proc after a warm-up).

    python benchmarks/cpu_accounting/run.py [--rounds 3] [--hogs 2] [--samplers stack,pyspy]
        [--idle 10]

Target: on-CPU profiles within 15% of the CPU used, beside hogs too, program and spans.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "attribution"))
from loadgen import cpu_seconds  # noqa: E402
from recording import RecordingReceiver  # noqa: E402
from samplers import SAMPLERS, check, sampler_env  # noqa: E402
from web import receiver_env  # noqa: E402

from pyrospan_launch.receiver.records import ProfileSeries  # noqa: E402

LAUNCHER = Path(sys.executable).with_name("pyrospan-run")
WORK = "work_main"


@dataclass(frozen=True)
class Config:
    """One row: a sampler, beside how many hogs, on-CPU or wall-clock."""

    sampler: str
    hogs: int
    oncpu: bool = True


@dataclass(frozen=True)
class Accounting:
    """What one run used and what its profiles showed, in seconds."""

    used: float  # thread CPU of work_main (oncpu) or its wall time (wall-clock mode)
    shown: float
    wall: float
    span_ratios: tuple[float, ...]  # per span: shown / used (wall-clock mode: / wall)
    said: tuple[str, ...] = ()  # pyrospan-run's warning lines (a sampler that did not start)

    @property
    def ratio(self) -> float:
        return self.shown / self.used if self.used else float("nan")


def sample_ns(series: ProfileSeries, value: int) -> int:
    """A sample's value in nanoseconds: pyroscope-io sends CPU time, or a count of samples."""
    unit = series.sample_types[0][1] if series.sample_types else "nanoseconds"
    if unit == "nanoseconds":
        return value
    return value * series.period  # a count, each sample worth one period


@contextlib.contextmanager
def hogs(count: int) -> Iterator[None]:
    """``count`` busy loops in processes of their own, for the duration."""
    processes = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.2 if count else 0)  # let them take their cores before the program starts
        yield
    finally:
        for process in processes:
            process.kill()
            process.wait()


def run_program(config: Config, spans: int, cpu_ms: float) -> Accounting:
    with RecordingReceiver() as receiver:
        env = receiver_env(
            receiver,
            PYROSCOPE_UPLOAD_INTERVAL="1",
            OTEL_SERVICE_NAME="cpu-accounting",
            OTEL_BSP_SCHEDULE_DELAY="200",
            PYROSCOPE_ONCPU="true" if config.oncpu else "false",
            **sampler_env(config.sampler),
        )
        command = [
            str(LAUNCHER), sys.executable, str(HERE / "program.py"), "spans",
            "--spans", str(spans), "--cpu-ms", str(cpu_ms),
        ]  # fmt: skip
        with hogs(config.hogs):
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=600, check=False
            )
        if done.returncode != 0:
            raise SystemExit(f"{config} failed:\n{done.stderr}")
        used = json.loads(done.stdout.splitlines()[-1])
        ids = {span["span_id"] for span in used["spans"]}
        receiver.wait_for(lambda r: {s.span_id for s in r.spans} >= ids, timeout=30)
        time.sleep(1.0)  # the exit push, if the last window was not pushed before
        shown = 0
        per_span = dict.fromkeys(ids, 0)
        for series in receiver.profiles:
            for sample in series.samples:
                if WORK not in sample.stack:
                    continue
                ns = sample_ns(series, sample.values[0])
                shown += ns
                span_id = sample.labels.get("span_id")
                if span_id in per_span:
                    per_span[span_id] += ns
    key = "cpu" if config.oncpu else "wall"
    return Accounting(
        used=used[key],
        shown=shown / 1e9,
        wall=used["wall"],
        span_ratios=tuple(per_span[span["span_id"]] / 1e9 / span[key] for span in used["spans"]),
        said=tuple(
            line for line in done.stderr.splitlines() if line.startswith(("pyrospan:", "pyrospan["))
        ),
    )


def idle_cpu(samplers: list[str], seconds: float) -> dict[str, float]:
    """% of a core used by idle traced processes, one per sampler and one without profiling."""
    variants = {s: sampler_env(s) for s in samplers}
    variants["profiling off"] = {"PYROSPAN_PROFILING": "false"}
    with RecordingReceiver() as receiver:
        processes = {
            name: subprocess.Popen(
                [
                    str(LAUNCHER),
                    sys.executable,
                    str(HERE / "program.py"),
                    "idle",
                    str(seconds + 30),
                ],
                env=receiver_env(receiver, OTEL_SERVICE_NAME="idle", **extra),
                stdout=subprocess.PIPE,
                text=True,
            )
            for name, extra in variants.items()
        }
        try:
            for process in processes.values():
                assert process.stdout is not None
                process.stdout.readline()  # "ready": started, traced, profiling
            time.sleep(3.0)  # past the first pushes and the exporter's first batch
            before = {name: cpu_seconds([p.pid]) for name, p in processes.items()}
            time.sleep(seconds)
            after = {name: cpu_seconds([p.pid]) for name, p in processes.items()}
        finally:
            for process in processes.values():
                process.kill()
                process.wait()
    return {name: (after[name] - before[name]) / seconds * 100 for name in processes}


def describe(config: Config) -> str:
    mode = "on-CPU" if config.oncpu else "wall-clock"
    return f"{config.sampler} {mode} hogs={config.hogs}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--samplers", default=",".join(SAMPLERS))
    parser.add_argument("--spans", type=int, default=4)
    parser.add_argument("--cpu-ms", type=float, default=300.0, help="span i burns (i+1) x this")
    parser.add_argument("--idle", type=float, default=10.0, metavar="SECONDS")
    args = parser.parse_args()
    samplers = [s for s in args.samplers.split(",") if s]
    check(samplers)
    configs = [Config(s, h) for s in samplers for h in (0, args.hogs)]
    configs += [Config(s, args.hogs, oncpu=False) for s in samplers]
    results: dict[Config, list[Accounting]] = {c: [] for c in configs}
    for round_number in range(args.rounds):
        for config in reversed(configs) if round_number % 2 else configs:
            result = run_program(config, args.spans, args.cpu_ms)
            results[config].append(result)
            print(
                f"round {round_number + 1} {describe(config):<28} used {result.used:.2f} s "
                f"shown {result.shown:.2f} s: x{result.ratio:.3f}, spans "
                + " ".join(f"x{r:.2f}" for r in result.span_ratios),
                file=sys.stderr,
                flush=True,
            )
    print(
        f"\nCPU in the profiles against CPU used, median of {args.rounds} interleaved rounds "
        f"({args.spans} root spans burning {args.cpu_ms:g} to {args.spans * args.cpu_ms:g} ms "
        f"each, on {os.cpu_count()} cores; load average before: "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())})\n"
    )
    print(
        "| sampler | mode | CPU hogs | used s | shown s | program: shown ÷ used | "
        "spans: shown ÷ used (min to max) |"
    )
    print("|---|---|---|---|---|---|---|")
    for config, runs in results.items():
        spans = [statistics.median(r.span_ratios[i] for r in runs) for i in range(args.spans)]
        used = "wall" if not config.oncpu else "CPU"
        print(
            f"| {config.sampler} | {'on-CPU' if config.oncpu else 'wall-clock'} | "
            f"{config.hogs} | {statistics.median(r.used for r in runs):.2f} ({used}) | "
            f"{statistics.median(r.shown for r in runs):.2f} | "
            f"{statistics.median(r.ratio for r in runs):.3f} | "
            f"{min(spans):.3f} to {max(spans):.3f} |"
        )
    said = {(describe(c), line) for c, runs in results.items() for r in runs for line in r.said}
    for config_name, line in sorted(said):
        print(f"\n{config_name}: pyrospan-run said: {line}")
    if args.idle > 0:
        idle: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for name, percent in idle_cpu(samplers, args.idle).items():
                idle.setdefault(name, []).append(percent)
        print(f"\nIdle traced process, {args.idle:g} s, median of {args.rounds}: % of a core\n")
        print("| profiler | CPU, % of a core |")
        print("|---|---|")
        for name, values in idle.items():
            print(f"| {name} | {statistics.median(values):.2f}% |")


if __name__ == "__main__":
    main()
