"""Without pyroscope-io (Python 3.15, where it has no wheel): traces, links, one line.

Under Python 3.15 (`make test-sid PY=3.15`) pyroscope-io is really missing: pip installed
pyrospan-run without it.  Where it is installed, a directory on PYTHONPATH makes its
import fail the same way (``programs/no_pyroscope``), so every lane runs these tests.
Also here: what pip resolves for pyrospan-run on this Python.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
from helpers import PROGRAMS, PYROSPAN_RUN, backend_env, clean_env, run
from recording_receiver import RecordingReceiver

from pyrospan_launch.common import profiler_support

pytestmark = pytest.mark.e2e

PY = sys.executable
REALLY_MISSING = find_spec("pyroscope") is None
# Where pyroscope-io is installed, this on PYTHONPATH makes `import pyroscope` fail.
HIDE = {} if REALLY_MISSING else {"PYTHONPATH": str(PROGRAMS / "no_pyroscope")}
LINE = "pyrospan: " + profiler_support.unavailable_reason()
CHECKOUT = Path(__file__).resolve().parents[2]


def _ours(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("pyrospan")]


def test_spans_exported_and_linked_with_one_line(receiver: RecordingReceiver) -> None:
    env = backend_env(receiver, **HIDE)
    result = run([PYROSPAN_RUN, PY, str(PROGRAMS / "last_words.py"), "exit", "0"], env)
    assert result.returncode == 0, result.stderr
    # Said once, at start, and nothing else from pyrospan-run.
    assert _ours(result.stderr) == [LINE]
    assert receiver.wait_for(lambda r: any(s.name == "last-words" for s in r.spans), 10)
    (span,) = [s for s in receiver.spans if s.name == "last-words"]
    assert span.attributes["pyroscope.profile.id"] == span.span_id
    assert receiver.samples() == []  # no profiler: nothing pushed, nothing else broken


def test_local_mode_lists_the_spans(tmp_path: Path) -> None:
    report = tmp_path / "report"
    command = [PYROSPAN_RUN, "--local", "--report-dir", str(report)]
    result = run([*command, PY, str(PROGRAMS / "last_words.py"), "exit", "0"], clean_env(**HIDE))
    assert result.returncode == 0, result.stderr
    assert LINE in result.stderr.splitlines()
    assert "Span profiles: 1 root span" in result.stderr
    assert "last-words     1 span" in result.stderr
    assert (report / "report.html").is_file()


def test_strict_mode_stops_before_the_app(receiver: RecordingReceiver) -> None:
    env = backend_env(receiver, PYROSPAN_STRICT="true", **HIDE)
    result = run([PYROSPAN_RUN, PY, str(PROGRAMS / "last_words.py"), "exit", "0"], env)
    assert result.returncode == 3
    assert "appdone" not in result.stdout
    assert _ours(result.stderr) == [LINE + " (PYROSPAN_STRICT=true: exiting before the app starts)"]


def test_info_says_the_same(receiver: RecordingReceiver) -> None:
    result = run([PYROSPAN_RUN, "--info", PY, "app.py"], backend_env(receiver, **HIDE))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "  profiling      off: " + profiler_support.unavailable_reason() in lines
    assert (
        "  span profiles  on: local root spans get pyroscope.profile.id; no CPU samples "
        "without pyroscope-io"
    ) in lines


def test_pip_resolves_pyroscope_io_only_where_it_has_wheels(tmp_path: Path) -> None:
    """Real pip, this Python: pyroscope-io up to 3.14, not on 3.15; the extra asks for it."""

    def resolved(requirement: str) -> set[str]:
        report_file = tmp_path / "report.json"
        done = subprocess.run(
            [
                PY,
                "-m",
                "pip",
                "install",
                "--dry-run",
                "--quiet",
                "--ignore-installed",
                "--report",
                str(report_file),
                requirement,
            ],
            env=clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1"),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0 or requirement.endswith("[profiling]"), done.stderr
        if done.returncode != 0:
            return {"(failed)"}
        report = json.loads(report_file.read_text(encoding="utf-8"))
        return {item["metadata"]["name"].lower() for item in report["install"]}

    wheels = sys.version_info < profiler_support.FIRST_PYTHON_WITHOUT_WHEEL
    assert ("pyroscope-io" in resolved(str(CHECKOUT))) == wheels
    with_extra = resolved(f"{CHECKOUT}[profiling]")
    # The extra always asks for pyroscope-io; without a wheel pip tries its source
    # distribution, which needs a Rust toolchain (it may fail here, never silently pass).
    assert "pyroscope-io" in with_extra or "(failed)" in with_extra
