"""End to end: a `pyrospan_launch/` folder in the cwd does not break an installed pyrospan-run.

``opentelemetry-instrument`` puts the current directory on PYTHONPATH, so from a directory
that holds a ``pyrospan_launch/`` folder (the project's own checkout) Python imports that
folder instead of the installed package.  The launcher then finds the installed copy's
bootstrap and runs, and the child runs the installed copy; with no installed copy at all
it says so in one line and exits 1.

The test environment installs pyrospan-run in editable mode, whose import finder would
hide the problem, so these tests build the wheel and install it, without dependencies,
into a bare virtual environment that borrows the test environment's packages.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from helpers import backend_env, clean_env, run
from recording_receiver import RecordingReceiver

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "tests" / "programs" / "hot_span.py"
OPENTELEMETRY_INSTRUMENT = str(Path(sys.executable).parent / "opentelemetry-instrument")
SHOW_PACKAGE = "import pyrospan_launch; print('package', pyrospan_launch.__file__)"


def _bare_venv(where: Path) -> Path:
    """A virtual environment without pip that sees the test environment's packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # A path from a .pth file is not scanned for .pth files itself: the editable install's
    # finder stays out, the test environment's other packages come in.
    Path(purelib, "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` directory of an environment where pyrospan-run is installed from its wheel."""
    base = tmp_path_factory.mktemp("installed")
    build = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(base), str(ROOT)],
        clean_env(),
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = base.glob("pyrospan_run-*.whl")
    python = _bare_venv(base / "venv")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    install = run([*pip, "--no-deps", "--no-index", str(wheel)], clean_env(), timeout=300)
    assert install.returncode == 0, install.stderr
    return python.parent


def test_opentelemetry_instrument_from_the_checkout_runs_the_installed_copy(
    installed: Path,
) -> None:
    with RecordingReceiver() as receiver:
        env = backend_env(
            receiver,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            PATH=f"{installed}{os.pathsep}{os.environ['PATH']}",
        )
        command = [
            str(installed / "python"),
            OPENTELEMETRY_INSTRUMENT,
            str(installed / "pyrospan-run"),
            "python",
            "-c",
            f"{SHOW_PACKAGE}\nimport runpy, sys; sys.argv = ['hot_span', '0.4']\n"
            f"runpy.run_path({str(PROGRAM)!r}, run_name='__main__')",
        ]
        # The checkout holds pyrospan_launch/ without the bootstrap, which lives elsewhere.
        assert (ROOT / "pyrospan_launch").is_dir()
        result = run(command, env, cwd=ROOT)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.splitlines() == [
            "pyrospan: opentelemetry-instrument and pyrospan-run in one command: pyrospan-run "
            "starts OpenTelemetry, once, with the same OTEL_* settings (opentelemetry-instrument's "
            "options included), and links spans to profiles"
        ]
        lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
        # The app's process runs the installed copy, not the checkout's folder.
        assert lines["package"].startswith(str(installed.parent / "lib"))
        span_id = lines["span_id"]
        assert receiver.wait_for(lambda r: any(s.span_id == span_id for s in r.spans), 15)
        assert receiver.wait_for(
            lambda r: any(
                "burn_cpu_in_span" in s.stack for s in r.samples_with_label("span_id", span_id)
            ),
            15,
        )


def test_a_source_tree_with_no_installed_copy_is_one_line_and_status_1(tmp_path: Path) -> None:
    python = _bare_venv(tmp_path / "venv")
    source = tmp_path / "checkout"
    source.mkdir()
    # A source tree's package: everything but the bootstrap, which only an install adds.
    subprocess.run(["cp", "-r", str(ROOT / "pyrospan_launch"), str(source)], check=True)
    env = clean_env(PYTHONPATH=str(source))
    result = run([str(python), "-m", "pyrospan_launch", "python", "-c", "pass"], env, cwd=source)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"pyrospan-run: no installed pyrospan-run found ({source / 'pyrospan_launch'} has no "
        "bootstrap): reinstall it with pip install pyrospan-run"
    ]
