"""Start-up benchmark: pyrospan-run against opentelemetry-instrument, side by side.

Each environment is a virtual environment (made on first use under benchmarks/.venvs)
holding pyrospan-run and a set of instrumentation packages; opentelemetry-instrument and
pyrospan-run run the same program with the same packages installed, interleaved round by
round.  Printed: median wall time and peak RSS, the overhead over plain python, and the
ratio of the two overheads (target: pyrospan-run <= 0.25 x opentelemetry-instrument).

    python benchmarks/startup/run.py [--rounds 15] [--envs one,flask]

Environments:
  one    one instrumentation package (opentelemetry-instrumentation-requests + requests)
  flask  flask plus everything `opentelemetry-bootstrap -a requirements` picks for it
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
VENVS = ROOT / "benchmarks" / ".venvs"
OTEL_SET = "0.66b1"

# Each with the distro, as zero-code set-ups have it: without one, opentelemetry-instrument
# sets up no SDK at all (pyrospan-run needs none; it configures the SDK itself).
ENVIRONMENTS = {
    "one": [
        "requests",
        f"opentelemetry-instrumentation-requests=={OTEL_SET}",
        f"opentelemetry-distro=={OTEL_SET}",
    ],
    "flask": ["flask", f"opentelemetry-distro=={OTEL_SET}"],
}

PROGRAMS = {
    "python -c pass": ["-c", "pass"],
    "import flask": ["-c", "import flask"],
}


def ensure_venv(name: str) -> Path:
    """The environment's bin directory, creating and filling it if needed."""
    venv = VENVS / name
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} (once)", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, str(ROOT), *ENVIRONMENTS[name]], check=True)
        if name == "flask":
            wanted = subprocess.run(
                [str(venv / "bin" / "opentelemetry-bootstrap"), "-a", "requirements"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()
            subprocess.run([*pip, *wanted], check=True)
    else:
        # The working tree as users install it: a wheel, not an editable install, whose
        # import finder would add its own cost to every start of both processes.
        print(f"installing pyrospan-run into {venv}", file=sys.stderr, flush=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--no-deps",
                "--force-reinstall",
                str(ROOT),
            ],
            check=True,
        )
    return venv / "bin"


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one run of ``command`` (the exec'd program's)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{command} exited {process.returncode}")
    return elapsed, usage.ru_maxrss / 1024


def installed_instrumentations(bin_dir: Path) -> int:
    code = (
        "from importlib.metadata import entry_points;"
        "print(len(list(entry_points(group='opentelemetry_instrumentor'))))"
    )
    done = subprocess.run(
        [str(bin_dir / "python"), "-c", code], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--envs", default="one,flask")
    args = parser.parse_args()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYROSPAN_", "PYROSCOPE_", "OTEL_")) and key != "PYTHONPATH"
    }
    # Nothing listens there: start-up must not depend on a backend.
    env.update(
        OTEL_SERVICE_NAME="startup",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        PYROSCOPE_SERVER_ADDRESS="http://127.0.0.1:9",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
    )

    print("Start-up, median of interleaved rounds; overhead = time - plain python\n")
    print(
        "| environment | program | plain python | opentelemetry-instrument | pyrospan-run | "
        "ratio of overheads | RSS MB: plain / otel / pyrospan |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.envs.split(","):
        bin_dir = ensure_venv(name)
        python = str(bin_dir / "python")
        count = installed_instrumentations(bin_dir)
        for program, program_args in PROGRAMS.items():
            if program == "import flask" and name != "flask":
                continue
            variants = {
                "plain": [python, *program_args],
                "otel": [str(bin_dir / "opentelemetry-instrument"), python, *program_args],
                "pyrospan": [str(bin_dir / "pyrospan-run"), python, *program_args],
            }
            times: dict[str, list[float]] = {v: [] for v in variants}
            memory: dict[str, list[float]] = {v: [] for v in variants}
            for command in variants.values():  # warm caches: .pyc files, the trigger cache
                measure(command, env)
            for round_number in range(args.rounds):
                order = list(variants)
                if round_number % 2:
                    order.reverse()
                for variant in order:
                    seconds, rss = measure(variants[variant], env)
                    times[variant].append(seconds)
                    memory[variant].append(rss)
            median = {v: statistics.median(t) * 1000 for v, t in times.items()}
            rss = {v: statistics.median(m) for v, m in memory.items()}
            otel_over = median["otel"] - median["plain"]
            ours_over = median["pyrospan"] - median["plain"]
            print(
                f"| {name} ({count} instrumentations) | `{program}` | {median['plain']:.0f} ms "
                f"| {median['otel']:.0f} ms (+{otel_over:.0f}) "
                f"| {median['pyrospan']:.0f} ms (+{ours_over:.0f}) "
                f"| {ours_over / otel_over:.2f} "
                f"| {rss['plain']:.0f} / {rss['otel']:.0f} / {rss['pyrospan']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
