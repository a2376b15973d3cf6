"""Run other projects' own test suites plain, under opentelemetry-instrument and under pyrospan-run.

A zero-code agent must be invisible to the program it runs; the best witnesses are test
suites written by people who never heard of it.  For each peer (Starlette, FastAPI,
anyio by default) this script:

1. downloads the peer's sdist from PyPI (``pip download --no-binary``) at the version
   given, or the newest, and unpacks it; the sdists carry their ``tests/``;
2. makes one virtual environment for it with this checkout of pyrospan-run, the peer
   from its sdist with its published test extra or test requirements file, and
   ``opentelemetry-distro`` for ``opentelemetry-instrument``;
3. runs ``python -m pytest`` on the peer's tests three ways, against a loopback sink
   that accepts both signals, and prints, per peer, the counts and every test whose
   outcome differs from the plain run, for each tool.

It is not part of ``make test`` (minutes per peer, network to PyPI; Python 3.11+).  Run
it after any change to the task handoff, the marker frames or the bootstrap::

    python tests/peers/run_peers.py                       # starlette, fastapi, anyio
    python tests/peers/run_peers.py --peer anyio==4.12.0 -- -k happy_eyeballs
"""

from __future__ import annotations

import argparse
import glob
import http.server
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PEERS = ["starlette", "fastapi", "anyio"]
MODES = ("plain", "opentelemetry-instrument", "pyrospan-run")
OUTCOME = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\s+(\S+)", re.MULTILINE)
# The instrumentations each peer's code paths meet (the rest of the dev set is not needed).
INSTRUMENTATIONS = [
    "opentelemetry-instrumentation-asgi",
    "opentelemetry-instrumentation-fastapi",
    "opentelemetry-instrumentation-starlette",
    "opentelemetry-instrumentation-httpx",
]


class _Sink(http.server.BaseHTTPRequestHandler):
    """Accepts every POST (OTLP spans, Pyroscope pushes) with an empty 200."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def sh(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(command), flush=True)
    return subprocess.run(command, check=True, text=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def fetch(peer: str, work: Path) -> Path:
    """Download and unpack ``peer``'s sdist; the unpacked directory."""
    downloads = work / "sdists"
    downloads.mkdir(parents=True, exist_ok=True)
    name = re.split(r"[=<>!~ ]", peer, maxsplit=1)[0]
    sh(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            "-d",
            str(downloads),
            peer,
        ]
    )
    pattern = re.sub(r"[-_.]+", "[-_.]", name)
    archives = sorted(glob.glob(str(downloads / f"{pattern}-*.tar.gz")), key=os.path.getmtime)
    archive = Path(archives[-1])
    target = work / archive.name.removesuffix(".tar.gz")
    if not target.exists():
        with tarfile.open(archive) as tar:
            tar.extractall(work, filter="data")
    return target


def environment(name: str, source: Path, work: Path) -> Path:
    """A virtual environment with pyrospan-run, the peer and its test requirements."""
    venv = work / f"venv-{name}"
    if not (venv / "bin" / "python").exists():
        sh([sys.executable, "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--quiet"]
    sh([*pip, "--upgrade", "pip"])
    # The OTLP exporters as OpenTelemetry's guide installs them, gRPC included: a suite's
    # subprocesses that drop the OTEL_* variables get opentelemetry-instrument's default
    # (gRPC), and without its exporter the reference would silently instrument nothing.
    sh(
        [
            *pip,
            "-e",
            str(REPO),
            "opentelemetry-distro",
            "opentelemetry-exporter-otlp",
            *INSTRUMENTATIONS,
            "pytest",
        ]
    )
    requirement_files = [
        f
        for f in sorted(source.glob("requirements*.txt"))
        if "test" in f.name or f.name == "requirements.txt"
    ]
    sh([*pip, str(source), *test_requirements(source)])
    for requirements in requirement_files:
        # Requirement files name the project itself as "-e .": install them from its dir.
        subprocess.run([*pip, "-r", requirements.name], cwd=source, check=False, text=True)
    # The distro's instrumentation versions must match the installed instrumentation set.
    sh([python, "-m", "pip", "uninstall", "--quiet", "--yes", "opentelemetry-distro"])
    read_version = (
        "import importlib.metadata as m; print(m.version('opentelemetry-instrumentation'))"
    )
    version = subprocess.run(
        [python, "-c", read_version], check=True, capture_output=True, text=True
    ).stdout.strip()
    sh([*pip, "--no-deps", f"opentelemetry-distro=={version}"])
    return venv


def test_requirements(source: Path) -> list[str]:
    """What pyproject.toml says the tests need: the test group or extra, and the "all" extra.

    The first of the groups ``test``, ``tests``, ``testing`` (``dev`` when none: projects
    on uv keep their test tools there), with ``include-group`` entries followed.
    """
    import tomllib  # type: ignore[import-not-found]  # 3.11+, as this script; mypy checks as 3.10

    pyproject = source / "pyproject.toml"
    if not pyproject.exists():
        return []
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    project = data.get("project", {})
    extras = project.get("optional-dependencies", {})
    groups = data.get("dependency-groups", {})

    def group(name: str) -> list[str]:
        found: list[str] = []
        for item in groups.get(name, []):
            if isinstance(item, str):
                found.append(item)
            elif isinstance(item, dict) and "include-group" in item:
                found += group(item["include-group"])
        return found

    for name in ("test", "tests", "testing", "dev"):
        if name in groups or name in extras:
            found = group(name) + list(extras.get(name, []))
            break
    else:
        found = []
    if "all" in extras:
        found.append(f"{project.get('name', source.name)}[all]")
    return found


def run_suite(
    venv: Path, source: Path, mode: str, env: dict[str, str], extra: list[str]
) -> dict[str, str]:
    """Outcome by test id of one run of the peer's suite."""
    python = str(venv / "bin" / "python")
    prefix = {
        "plain": [],
        "opentelemetry-instrument": [str(venv / "bin" / "opentelemetry-instrument")],
        "pyrospan-run": [str(venv / "bin" / "pyrospan-run")],
    }[mode]
    command = [
        *prefix,
        python,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rA",
        "--tb=no",
        # opentelemetry-instrument imports libraries (anyio...) before pytest starts,
        # which pytest warns it cannot rewrite: suites with filterwarnings=error stop.
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        *extra,
    ]
    started = time.monotonic()
    done = subprocess.run(command, cwd=source, env=env, capture_output=True, text=True, check=False)
    took = time.monotonic() - started
    (venv.parent / f"{venv.name.removeprefix('venv-')}-{mode}.txt").write_text(
        done.stdout + done.stderr, encoding="utf-8"
    )
    outcomes = {test: outcome for outcome, test in OUTCOME.findall(done.stdout)}
    tail = [line for line in done.stdout.splitlines() if line.strip()][-1:] or [done.stderr[-300:]]
    print(f"  {mode:<26} {len(outcomes):>5} tests in {took:5.0f} s: {tail[0]}", flush=True)
    ours = [line for line in done.stderr.splitlines() if line.startswith("pyrospan")]
    for line in sorted(set(ours))[:10]:
        print(f"    stderr: {line}")
    if not outcomes:
        raise SystemExit(f"{mode}: the suite ran no test; its output ends:\n{done.stdout[-2000:]}")
    return outcomes


def compare(name: str, results: dict[str, dict[str, str]]) -> int:
    plain = results["plain"]
    differences = 0
    for mode in MODES[1:]:
        changed = sorted(
            (test, plain.get(test, "absent"), outcome)
            for test, outcome in results[mode].items()
            if plain.get(test, "absent") != outcome
        )
        missing = sorted(set(plain) - set(results[mode]))
        print(
            f"  {name} under {mode}: {len(changed)} outcomes differ from plain, "
            f"{len(missing)} tests missing"
        )
        for test, before, after in changed[:40]:
            print(f"    {test}: {before} -> {after}")
        differences += len(changed) + len(missing)
    otel, ours = results["opentelemetry-instrument"], results["pyrospan-run"]
    only_ours = sorted(t for t, o in ours.items() if o != otel.get(t, "absent"))
    print(
        f"  {name}: {len(only_ours)} outcomes differ, pyrospan-run against opentelemetry-instrument"
    )
    for test in only_ours[:40]:
        reference = otel.get(test, "absent")
        print(f"    {test}: opentelemetry-instrument {reference}, pyrospan-run {ours[test]}")
    return len(only_ours)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--peer",
        action="append",
        help="a requirement, e.g. starlette or anyio==4.12.0 (repeatable)",
    )
    parser.add_argument(
        "--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "pyrospan-peers")
    )
    parser.add_argument("--fresh", action="store_true", help="remove the work directory first")
    parser.add_argument(
        "pytest_args", nargs="*", help="after --: extra pytest arguments for every run"
    )
    args = parser.parse_args()
    work = Path(args.work)
    if args.fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{sink.server_address[1]}"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "PYROSCOPE_", "PYROSPAN_", "PYTHONPATH", "VIRTUAL_ENV"))
    }
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=url,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        PYROSCOPE_SERVER_ADDRESS=url,
        PYROSCOPE_UPLOAD_INTERVAL="1",
        OTEL_SERVICE_NAME="peer-suite",
    )
    differing = 0
    for peer in args.peer or DEFAULT_PEERS:
        source = fetch(peer, work)
        name = source.name
        print(f"\n== {name}", flush=True)
        venv = environment(name, source, work)
        results = {mode: run_suite(venv, source, mode, env, args.pytest_args) for mode in MODES}
        differing += compare(name, results)
    sink.shutdown()
    print(f"\n{differing} outcomes differ between pyrospan-run and opentelemetry-instrument in all")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
