"""End to end: the app sees what it sees under opentelemetry-instrument, and nothing of ours.

tests/programs/transparency_probe.py runs a FastAPI app, asyncio tasks, thread pools and
anyio worker threads inside root spans, and prints what the app can observe: the
tracebacks of exceptions (as ``traceback.extract_tb``, ``sys.exc_info()``, the exception
chain, ``logging.exception`` and an exception handler see them), the referrers of an
exception thrown into a task, the task objects (``isinstance``, ``get_coro()``,
``_coro``, eager tasks), cancellation, ``TaskGroup`` and ``asyncio.timeout``, where
warnings point, an instrumentation that warns while it loads under
``simplefilter("error")``, ``signal.getsignal`` and ``OpenTelemetryMiddleware.app``.

It runs once under ``opentelemetry-instrument`` and once under ``pyrospan-run``; the two
reports must be equal, and every
root span's work must have run inside a marker frame under pyrospan-run (or the
comparison would prove nothing).  ``make test-transparency`` runs this file under every
Python that pyenv has.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import PROGRAMS, PYROSPAN_RUN, both_tools_env, run
from recording_receiver import RecordingReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.otel]

PY = sys.executable
PROBE = str(PROGRAMS / "transparency_probe.py")
OPENTELEMETRY_INSTRUMENT = os.path.join(os.path.dirname(PY), "opentelemetry-instrument")

# Python 3.10 re-raises the traceback it caught, whose head is the catching frame: the
# outermost wrapper of ours at each boundary keeps its one entry there (never a marker).
OURS_STAY = sys.version_info < (3, 11)
STABLE_WRAPPERS = {
    "send",
    "throw",
    "labelled",
    "app_in_root_span",
    "run_endpoint_in_root_span",
}
OUR_ENTRY = re.compile(r'  File "[^"]*/pyrospan_launch/[^"]*", line \d+, in (\w+)\n(    .*\n)?')


def without_our_wrappers(value: Any, names: set[str]) -> Any:
    """``value`` less the entries of our wrappers (Python 3.10), their names noted."""
    if isinstance(value, dict):
        return {key: without_our_wrappers(item, names) for key, item in value.items()}
    if isinstance(value, list):
        kept = []
        for item in value:
            if isinstance(item, str) and "/pyrospan_launch/" in item:
                names.add(item.rsplit(":", 1)[-1])
                continue
            kept.append(without_our_wrappers(item, names))
        return kept
    if isinstance(value, str):
        names.update(match[0] for match in OUR_ENTRY.findall(value))
        return OUR_ENTRY.sub("", value)
    return value


def probe(command: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    done = run([*command, PY, PROBE], env, cwd=cwd, timeout=120)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@pytest.fixture(scope="module")
def reports(distro_dir: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cwd = tmp_path_factory.mktemp("transparency")
    with RecordingReceiver() as receiver:
        env = both_tools_env(receiver)
        reference = probe([OPENTELEMETRY_INSTRUMENT], {**env, "PYTHONPATH": distro_dir}, cwd)
        ours = probe([PYROSPAN_RUN], env, cwd)
    return {"opentelemetry-instrument": reference, "pyrospan-run": ours}


def test_every_root_span_ran_inside_its_marker_under_pyrospan_run(
    reports: dict[str, Any],
) -> None:
    mode = reports["pyrospan-run"]["mode"]
    assert mode, "the probe saw no root span's work"
    assert all(mode.values()), mode
    assert not any(reports["opentelemetry-instrument"]["mode"].values())


def keys() -> list[str]:
    """The probe's points, read from the program so a new one is compared too."""
    text = Path(PROBE).read_text(encoding="utf-8")
    return sorted(set(re.findall(r'SAME\["([^"]+)"\]', text)))


@pytest.mark.parametrize("point", keys())
def test_the_app_sees_what_it_sees_under_opentelemetry_instrument(
    reports: dict[str, Any], point: str
) -> None:
    reference = reports["opentelemetry-instrument"]["same"]
    ours = reports["pyrospan-run"]["same"]
    assert point in reference, sorted(reference)
    if OURS_STAY:
        names: set[str] = set()
        ours = without_our_wrappers(ours, names)
        assert names <= STABLE_WRAPPERS, names
    assert ours[point] == reference[point]


def test_no_frame_of_ours_in_any_traceback_the_app_saw(reports: dict[str, Any]) -> None:
    text = json.dumps(reports["pyrospan-run"]["same"])
    assert "pyrospan.span:" not in text
    if not OURS_STAY:
        assert "pyrospan_launch" not in text
    for span_name in ("tasks", "threads", "GET /boom", "GET /sync"):
        assert f'"{span_name}:' not in text  # a frame filed under a span name
