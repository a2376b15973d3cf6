"""End to end: ``pyrospan-run --local`` runs real programs with the real SDK and profiler.

The launcher is driven as a user would (a subprocess, signals, a terminal), and checked
through what it prints, the files it writes and its exit status.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import PROGRAMS, PYROSPAN_RUN, clean_env, run

from pyrospan_launch.receiver.profiles import decode_pprof

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable

_GROUP = re.compile(r"^  (?P<name>\S.*?)\s+(?P<count>\d+) spans?\s+p50")
_FUNCTION = re.compile(r"^ {6,}[\d.]+ m?s\s+\d*%?\s+(?P<name>\S+)")


def summary_groups(stderr: str) -> dict[str, tuple[int, list[str]]]:
    """From the terminal summary: span name -> (count, functions by self time)."""
    groups: dict[str, tuple[int, list[str]]] = {}
    current: list[str] | None = None
    for line in stderr.splitlines():
        group = _GROUP.match(line)
        function = _FUNCTION.match(line)
        if group:
            current = []
            groups[group["name"]] = (int(group["count"]), current)
        elif line.startswith("  whole process"):
            current = []
            groups["whole process"] = (0, current)
        elif function and current is not None:
            current.append(function["name"])
        elif not line.strip():
            continue
        else:
            current = None
    return groups


def wait_for_lines(path: Path, count: int, process: subprocess.Popen[str]) -> None:
    """Wait until the test program has recorded ``count`` finished spans."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} spans recorded in {path}")


@pytest.fixture(scope="module")
def shop_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The README's first command: the bundled shop under local mode."""
    report = tmp_path_factory.mktemp("shop") / "report"
    result = run(
        [PYROSPAN_RUN, "--local", "--report-dir", str(report), "python", "examples/shop.py"],
        clean_env(),
        cwd=ROOT,
    )
    return result, report


def test_summary_names_each_hot_function_under_its_span_name(
    shop_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, _ = shop_run
    assert result.returncode == 0, result.stderr
    # The program's stdout is its own: the launcher writes only to stderr.
    assert result.stdout == "shop: handled 6 requests\n"
    assert re.search(
        r"^pyrospan-run: live span profiles at http://127\.0\.0\.1:\d+/ ", result.stderr, re.M
    )
    assert "pyrospan-run: python examples/shop.py exited with status 0" in result.stderr
    groups = summary_groups(result.stderr)
    assert groups["POST /checkout"][0] == 3 and groups["POST /checkout"][1][0] == "price_cart"
    assert groups["POST /login"][0] == 3 and groups["POST /login"][1][0] == "hash_password"
    assert "hash_password" not in groups["POST /checkout"][1]
    assert "price_cart" not in groups["POST /login"][1]


def test_report_and_pprof_files_are_written_and_parse(
    shop_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, report = shop_run
    assert result.returncode == 0, result.stderr
    page = (report / "report.html").read_text()
    assert "<script src" not in page and "<link" not in page and "http://" not in page
    assert (report / "pyrospan.sqlite").is_file()
    files = sorted((report / "pprof").glob("POST_*.pb.gz"))
    assert len(files) == 6
    for file in files:
        profile = decode_pprof(file.read_bytes())
        span_id = file.name[: -len(".pb.gz")].rsplit("-", 1)[1]
        name = "POST /checkout" if file.name.startswith("POST_checkout") else "POST /login"
        hot = "price_cart" if name == "POST /checkout" else "hash_password"
        assert {s.labels["span_id"] for s in profile.samples} == {span_id}
        assert {s.labels["span_name"] for s in profile.samples} == {name}
        cpu = sum(s.values[0] for s in profile.samples if hot in s.stack)
        assert cpu >= 0.5 * sum(s.values[0] for s in profile.samples) > 0
        assert profile.duration_nanos > 0 and profile.period == 10_000_000
    whole = decode_pprof((report / "pprof" / "process.pb.gz").read_bytes())
    assert any("price_cart" in s.stack for s in whole.samples)


def test_render_writes_everything_again_from_sqlite(
    shop_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, report = shop_run
    (report / "report.html").unlink()
    for file in (report / "pprof").iterdir():
        file.unlink()
    again = run([PYROSPAN_RUN, "--render", str(report)], clean_env())
    assert again.returncode == 0, again.stderr
    assert "data of `python examples/shop.py`, exit status 0" in again.stderr
    assert summary_groups(again.stderr) == summary_groups(result.stderr)
    assert (report / "report.html").is_file()
    assert len(list((report / "pprof").glob("*.pb.gz"))) == 7


def test_render_of_a_directory_without_data_is_one_line(tmp_path: Path) -> None:
    result = run([PYROSPAN_RUN, "--render", str(tmp_path)], clean_env())
    assert result.returncode == 2
    assert result.stderr == (
        f"pyrospan-run: no span profile data at {tmp_path / 'pyrospan.sqlite'} "
        "(written by --local or --serve)\n"
    )


def test_exit_status_is_the_programs(tmp_path: Path) -> None:
    program = (
        "import sys, time\n"
        "from opentelemetry import trace\n"
        "with trace.get_tracer('t').start_as_current_span('nightly job'):\n"
        "    end = time.process_time() + 0.2\n"
        "    while time.process_time() < end: pass\n"
        "sys.exit(5)\n"
    )
    result = run(
        [PYROSPAN_RUN, "--local", "--report-dir", str(tmp_path), PY, "-c", program], clean_env()
    )
    assert result.returncode == 5, result.stderr
    assert "exited with status 5" in result.stderr
    assert summary_groups(result.stderr)["nightly job"][0] == 1
    assert (tmp_path / "report.html").is_file()


def test_environment_variables_turn_local_mode_on(tmp_path: Path) -> None:
    program = (
        "import os; print(os.environ.get('PYROSPAN_LOCAL'), os.environ['PYROSCOPE_SERVER_ADDRESS'])"
    )
    env = clean_env(
        PYROSPAN_LOCAL="true",
        PYROSPAN_REPORT_DIR=str(tmp_path / "r"),
        PYROSCOPE_SERVER_ADDRESS="http://pyroscope.invalid:4040",
    )
    result = run([PYROSPAN_RUN, PY, "-c", program], env)
    assert result.returncode == 0, result.stderr
    # The child reports to the launcher's receiver and does not start a local mode itself.
    assert re.fullmatch(r"None http://127\.0\.0\.1:\d+\n", result.stdout)
    assert result.stdout.split()[1] in result.stderr
    assert (tmp_path / "r" / "report.html").is_file()


def test_command_not_found_starts_nothing(tmp_path: Path) -> None:
    report = tmp_path / "never"
    result = run(
        [PYROSPAN_RUN, "--local", "--report-dir", str(report), "no-such-command-xyz"], clean_env()
    )
    assert result.returncode == 127
    assert result.stderr == "pyrospan-run: command not found: no-such-command-xyz\n"
    assert not report.exists()


@pytest.mark.parametrize(
    ("signum", "status"),
    [(signal.SIGTERM, 7), (signal.SIGINT, 128 + signal.SIGINT)],
    ids=["SIGTERM", "SIGINT"],
)
def test_signals_reach_the_program_and_the_report_is_still_written(
    tmp_path: Path, signum: int, status: int
) -> None:
    control = tmp_path / "control"
    control.mkdir()
    (control / "go").touch()
    command = [PYROSPAN_RUN, "--local", "--report-dir", str(tmp_path / "r"), PY]
    command += [str(PROGRAMS / "local_app.py"), str(control), "0", "POST /checkout", "POST /login"]
    launcher = subprocess.Popen(
        command, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for_lines(control / "spans", 2, launcher)
        launcher.send_signal(signum)
        _, err = launcher.communicate(timeout=30)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    # local_app exits 7 on SIGTERM; on SIGINT Python dies of it: a shell shows 130.
    assert launcher.returncode == status, err
    assert f"exited with status {status}" in err
    groups = summary_groups(err)
    assert groups["POST /checkout"][1][0] == "price_cart"
    assert (tmp_path / "r" / "report.html").is_file()


COUNT_SIGINT = """
import signal, sys, time
seen = []
signal.signal(signal.SIGINT, lambda *_: seen.append(1))
print("ready", flush=True)
deadline = time.monotonic() + 20
while not seen and time.monotonic() < deadline:
    time.sleep(0.02)
time.sleep(1.0)  # time for a second, relayed SIGINT to arrive
sys.exit(10 + len(seen))
"""


def test_ctrl_c_in_a_terminal_reaches_the_program_once(tmp_path: Path) -> None:
    # A terminal sends Ctrl-C to the whole foreground process group, the program included;
    # the launcher must not relay it a second time (uvicorn quits at once on a second one).
    main, terminal = pty.openpty()

    def take_terminal() -> None:  # runs in the child: the pty becomes its controlling terminal
        import fcntl
        import termios

        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    launcher = subprocess.Popen(
        [PYROSPAN_RUN, "--local", "--report-dir", str(tmp_path), PY, "-c", COUNT_SIGINT],
        env=clean_env(PYROSPAN_LOG_LEVEL="debug"),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
        preexec_fn=take_terminal,
    )
    os.close(terminal)
    output = b""
    try:
        deadline = time.monotonic() + 30
        ready = re.compile(rb"^ready\r?$", re.M)  # the program's line, not an echo of its code
        while not ready.search(output) and time.monotonic() < deadline:
            if select.select([main], [], [], 0.2)[0]:
                output += os.read(main, 4096)
        assert ready.search(output), output
        os.write(main, b"\x03")  # Ctrl-C, as typed
        status = launcher.wait(timeout=30)
        while select.select([main], [], [], 0.2)[0]:
            try:
                output += os.read(main, 4096)
            except OSError:
                break
    finally:
        if launcher.poll() is None:
            launcher.kill()
        os.close(main)
    text = output.decode(errors="replace")
    assert status == 11, text
    assert "exited with status 11" in text
    assert "pyrospan-run: SIGINT came from the terminal, which sent it to the program too" in text
    assert "relaying SIGINT" not in text
