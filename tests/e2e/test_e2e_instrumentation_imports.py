"""End to end: an instrumentation whose module imports another instrumented library loads whole.

pyrospan-run loads each instrumentation when the app first imports its library.  The
httpx instrumentation (one distribution, two entry points: ``httpx`` and ``httpx2``, both
in ``opentelemetry.instrumentation.httpx``) imports httpx2 while its own module runs, to
instrument both.  The import of httpx2 used to load the ``httpx2`` entry point at once,
from a module that did not define it yet: one ``pyrospan: instrumentation httpx2 failed
and is skipped: AttributeError: partially initialized module ...`` line, and httpx2 went
uninstrumented.  ``opentelemetry-instrument`` loads every instrumentation before the app
runs and instruments both.

The same shape is built here from real distributions in a directory on PYTHONPATH: two
libraries and one instrumentation whose module imports the second library between its two
instrumentor classes.  The program starts OpenTelemetry, imports the first library, then
checks both.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from helpers import PYROSPAN_RUN, both_tools_env, run
from recording_receiver import RecordingReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.otel]

PY = sys.executable
OPENTELEMETRY_INSTRUMENT = os.path.join(os.path.dirname(PY), "opentelemetry-instrument")

INSTRUMENTATION = """
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor


class FirstInstrumentor(BaseInstrumentor):
    def instrumentation_dependencies(self):
        return ("pyrospan-first-lib >= 1.0",)

    def _instrument(self, **kwargs):
        import pyrospan_first_lib

        pyrospan_first_lib.INSTRUMENTED = True

    def _uninstrument(self, **kwargs):
        pass


# The shape of opentelemetry.instrumentation.httpx: the second library is imported while
# this module runs, before the second instrumentor exists.
try:
    import pyrospan_second_lib
except ImportError:
    pyrospan_second_lib = None


class SecondInstrumentor(BaseInstrumentor):
    def instrumentation_dependencies(self):
        return ("pyrospan-second-lib >= 1.0",)

    def _instrument(self, **kwargs):
        pyrospan_second_lib.INSTRUMENTED = True

    def _uninstrument(self, **kwargs):
        pass
"""

PROGRAM = """
import json

# OpenTelemetry starts first (FastAPI's own import of the API does this in a FastAPI
# app); the libraries come later, each loading its instrumentation as it is imported.
import opentelemetry.trace
import pyrospan_first_lib
import pyrospan_second_lib

print(json.dumps({
    "first": getattr(pyrospan_first_lib, "INSTRUMENTED", False),
    "second": getattr(pyrospan_second_lib, "INSTRUMENTED", False),
}))
"""


def distribution(site: Path, name: str, version: str, requires: list[str], **files: str) -> None:
    """An installed distribution: its modules and a ``.dist-info`` with the given metadata."""
    module = name.replace("-", "_")
    for path, text in files.items():
        (site / path).write_text(text, encoding="utf-8")
    info = site / f"{module}-{version}.dist-info"
    info.mkdir()
    metadata = [f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}"]
    metadata += ["Provides-Extra: instruments-any"] if requires else []
    metadata += [f"Requires-Dist: {r}; extra == 'instruments-any'" for r in requires]
    (info / "METADATA").write_text("\n".join(metadata) + "\n", encoding="utf-8")
    (info / "top_level.txt").write_text(module + "\n", encoding="utf-8")
    (info / "RECORD").write_text("", encoding="utf-8")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    distribution(site, "pyrospan-first-lib", "1.0", [], **{"pyrospan_first_lib.py": ""})
    distribution(site, "pyrospan-second-lib", "1.0", [], **{"pyrospan_second_lib.py": ""})
    distribution(
        site,
        "pyrospan-both-instrumentation",
        "1.0",
        ["pyrospan-first-lib>=1.0", "pyrospan-second-lib>=1.0"],
        **{"pyrospan_both_instrumentation.py": INSTRUMENTATION},
    )
    entry_points = (
        "[opentelemetry_instrumentor]\n"
        "first = pyrospan_both_instrumentation:FirstInstrumentor\n"
        "second = pyrospan_both_instrumentation:SecondInstrumentor\n"
    )
    info = site / "pyrospan_both_instrumentation-1.0.dist-info"
    (info / "entry_points.txt").write_text(entry_points, encoding="utf-8")
    (site / "program.py").write_text(PROGRAM, encoding="utf-8")
    return site


def test_an_instrumentation_importing_another_library_while_it_loads_instruments_both(
    site: Path, distro_dir: str
) -> None:
    with RecordingReceiver() as receiver:
        env = both_tools_env(receiver, XDG_CACHE_HOME=str(site / "cache"))
        program = str(site / "program.py")
        reference = run(
            [OPENTELEMETRY_INSTRUMENT, PY, program],
            {**env, "PYTHONPATH": os.pathsep.join([distro_dir, str(site)])},
            cwd=site,
        )
        ours = run([PYROSPAN_RUN, PY, program], {**env, "PYTHONPATH": str(site)}, cwd=site)
    assert reference.returncode == 0, reference.stderr
    assert json.loads(reference.stdout) == {"first": True, "second": True}
    assert ours.returncode == 0, ours.stderr
    assert "failed and is skipped" not in ours.stderr, ours.stderr
    assert json.loads(ours.stdout) == {"first": True, "second": True}, ours.stderr
