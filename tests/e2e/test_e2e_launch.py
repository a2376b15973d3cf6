"""End to end: real programs run under pyrospan-run behave exactly as under plain python.

A probe program prints what it can see of how it was started; each case runs it with and
without the launcher (as the console script and as ``python -m pyrospan_launch``) and
compares.  Tracing and profiling are on, pointed at a live receiver.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import PROGRAMS, PYROSPAN_RUN, backend_env, clean_env, run
from recording_receiver import RecordingReceiver

from pyrospan_launch.launcher.child_env import bootstrap_dir

pytestmark = pytest.mark.e2e

PY = sys.executable


def probe(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"probe printed nothing; stderr:\n{result.stderr}"
    report: dict[str, object] = json.loads(lines[-1])
    return report


@pytest.mark.parametrize(
    "invocation",
    [
        pytest.param([str(PROGRAMS / "probe.py"), "one", "two", "7"], id="script"),
        pytest.param(["-m", "probe_pkg", "--flag", "3"], id="module"),
        pytest.param(["-c", "exec(open('probe.py').read())", "x", "0"], id="command"),
    ],
)
def test_program_sees_what_plain_python_shows(
    launcher: list[str], invocation: list[str], receiver: RecordingReceiver
) -> None:
    env = backend_env(receiver)
    plain = run([PY, *invocation], clean_env(), cwd=PROGRAMS)
    launched = run([*launcher, PY, *invocation], env, cwd=PROGRAMS)
    assert launched.returncode == plain.returncode, launched.stderr
    seen, expected = probe(launched), probe(plain)
    for key in ("name", "file", "argv", "path", "cwd"):
        assert seen[key] == expected[key], key
    assert launched.stderr == plain.stderr == ""


def test_exit_code_and_app_traceback_are_the_apps(launcher: list[str], tmp_path: Path) -> None:
    app = tmp_path / "boom.py"
    app.write_text("import sys\nprint('out')\nraise SystemExit('bad thing happened')\n")
    plain = run([PY, str(app)], clean_env())
    launched = run([*launcher, PY, str(app)], clean_env(PYROSPAN_PROFILING="false"))
    assert (launched.returncode, launched.stdout, launched.stderr) == (
        plain.returncode,
        plain.stdout,
        plain.stderr,
    )
    assert launched.returncode == 1


def test_console_script_entry_point_runs_instrumented(receiver: RecordingReceiver) -> None:
    # `flask` is a console script of the app's environment, found on PATH.
    env = backend_env(receiver, PATH=f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}")
    env["FLASK_APP"] = str(PROGRAMS / "flask_app.py")
    result = run(
        [
            *[PYROSPAN_RUN, "--log-level", "debug"],
            "flask",
            "routes",
        ],
        env,
    )
    assert result.returncode == 0, result.stderr
    assert "/invoice" in result.stdout
    assert "instrumentation flask: loaded" in result.stderr
    # OpenTelemetry started with the app's first import of flask, linking included.
    assert "OpenTelemetry starts: first import of flask" in result.stderr
    assert "OpenTelemetry ready: tracing=on linking=on" in result.stderr


def test_user_sitecustomize_runs_exactly_once(launcher: list[str], tmp_path: Path) -> None:
    user_dir = tmp_path / "usersite"
    user_dir.mkdir()
    (user_dir / "sitecustomize.py").write_text(
        "import os, sys\n"
        "with open(os.environ['RUNS_LOG'], 'a') as f:\n"
        "    f.write(repr(sys.argv[:1]) + '\\n')\n"
    )
    program = "import sys; print(sys.path)"
    outputs = []
    for name, prefix in (("plain", []), ("launched", launcher)):
        log = tmp_path / f"{name}.log"
        env = clean_env(PYTHONPATH=str(user_dir), PYROSPAN_PROFILING="false", RUNS_LOG=str(log))
        result = run([*prefix, PY, "-c", program], env)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
        # Only the program's interpreter counts (argv ['-c']); the launcher's own Python
        # start-up also reads PYTHONPATH and runs the user's file, as any Python would.
        assert log.read_text().splitlines().count("['-c']") == 1, name
    assert outputs[0] == outputs[1]  # same sys.path: the bootstrap directory is gone


def test_error_in_user_sitecustomize_reported_as_python_does(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text("raise RuntimeError('user site broke')\n")
    env = clean_env(PYTHONPATH=str(tmp_path), PYROSPAN_PROFILING="false")
    plain = run([PY, "-c", "print('ran')"], env)
    # The bootstrap directory first, as the launcher sets it (without the launcher's own
    # interpreter, which would report the user's broken file too, as any Python would).
    chained = {**env, "PYTHONPATH": f"{bootstrap_dir()}{os.pathsep}{tmp_path}"}
    launched = run([PY, "-c", "print('ran')"], chained)
    assert plain.stdout == launched.stdout == "ran\n"
    assert launched.stderr == plain.stderr
    assert "RuntimeError: user site broke" in launched.stderr


def test_pythonpath_gets_bootstrap_once_even_when_nested(launcher: list[str]) -> None:
    env = clean_env(PYTHONPATH="/user/a:/user/b", PYROSPAN_PROFILING="false")
    result = run(
        [*launcher, *launcher, PY, str(PROGRAMS / "probe.py")],
        {**env, "PYROSPAN_TRACING": "false"},
    )
    seen = probe(result)
    assert seen["pythonpath"] == os.pathsep.join([bootstrap_dir(), "/user/a", "/user/b"])


def test_python_dash_s_runs_untouched(launcher: list[str]) -> None:
    result = run(
        [*launcher, PY, "-S", "-c", "import sys; print('sitecustomize' in sys.modules)"],
        clean_env(),
    )
    assert result.returncode == 0
    assert result.stdout == "False\n" and result.stderr == ""


def test_bootstrap_works_without_the_launcher(receiver: RecordingReceiver) -> None:
    # A Dockerfile may set PYTHONPATH to the bootstrap directory itself.
    env = backend_env(receiver, PYTHONPATH=bootstrap_dir(), OTEL_SERVICE_NAME="manual")
    result = run([PY, str(PROGRAMS / "hot_span.py"), "0.3"], env)
    assert result.returncode == 0, result.stderr
    span_id = result.stdout.split()[1]
    assert receiver.wait_for(
        lambda r: any(s.span_id == span_id for s in r.root_spans()), timeout=15
    )


def test_interpreter_without_pyrospan_runs_silently(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    subprocess.run([PY, "-m", "venv", "--without-pip", str(bare)], check=True)
    bare_python = str(bare / "bin" / "python")
    result = run(
        [PYROSPAN_RUN, bare_python, "-c", "print('hello')"],
        {**clean_env(), "PATH": os.environ["PATH"]},
    )
    assert result.returncode == 0
    assert result.stdout == "hello\n"
    assert result.stderr == ""


def test_bad_value_reported_once_and_app_runs_with_profiling_off(
    receiver: RecordingReceiver,
) -> None:
    env = backend_env(receiver, PYROSCOPE_SAMPLE_RATE="abc")
    result = run(
        [PYROSPAN_RUN, PY, str(PROGRAMS / "hot_span.py"), "0.2"],
        {**env, "PATH": os.environ["PATH"]},
    )
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        "pyrospan-run: PYROSCOPE_SAMPLE_RATE='abc': expected a positive integer (Hz) up to 10000",
        "pyrospan-run: profiling is off for this run (PYROSCOPE_SAMPLE_RATE is not valid)",
    ]
    span_id = result.stdout.split()[1]
    assert receiver.wait_for(lambda r: any(s.span_id == span_id for s in r.spans), timeout=15)
    (span,) = [s for s in receiver.spans if s.span_id == span_id]
    assert "pyroscope.profile.id" not in span.attributes  # no profile to link to


def test_strict_mode_stops_before_user_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').write('x')"
    env = {**clean_env(PYROSPAN_STRICT="true", PYROSCOPE_LABELS="oops"), "PATH": os.environ["PATH"]}
    result = run([PYROSPAN_RUN, PY, "-c", code], env)
    assert result.returncode == 3
    assert "PYROSCOPE_LABELS='oops': expected" in result.stderr
    assert not marker.exists()


def test_strict_mode_in_the_child_exits_3_when_a_part_fails(tmp_path: Path) -> None:
    # A configurator that is not installed makes tracing fail to start inside the child.
    marker = tmp_path / "ran"
    env = clean_env(
        PYTHONPATH=bootstrap_dir(),
        PYROSPAN_STRICT="true",
        PYROSPAN_PROFILING="false",
        OTEL_PYTHON_CONFIGURATOR="no-such-configurator",
    )
    result = run([PY, "-c", f"open({str(marker)!r}, 'w').write('x')"], env)
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith(
        "pyrospan: tracing disabled: LookupError: OTEL_PYTHON_CONFIGURATOR='no-such-configurator'"
        " is not installed (installed: "
    )
    assert "PYROSPAN_STRICT=true: exiting before the app starts" in result.stderr
    assert not marker.exists()


def test_failing_part_gives_one_line_and_app_still_runs() -> None:
    env = clean_env(
        PYTHONPATH=bootstrap_dir(),
        PYROSPAN_PROFILING="false",
        OTEL_PYTHON_CONFIGURATOR="no-such-configurator",
    )
    # The app uses the OpenTelemetry API, so tracing starts (and fails) in that import.
    result = run([PY, "-c", "import opentelemetry.trace; print('app ran')"], env)
    assert result.returncode == 0
    assert result.stdout == "app ran\n"
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyrospan: tracing disabled: ")


def test_secrets_never_appear_in_any_output(receiver: RecordingReceiver) -> None:
    secret = "Zq-PLANTED-s3cr3t-91"
    env = backend_env(
        receiver,
        PYROSCOPE_BASIC_AUTH_USER="user",
        PYROSCOPE_BASIC_AUTH_PASSWORD=secret,
        PYROSCOPE_HTTP_HEADERS=f'{{"X-Api-Key": "{secret}"}}',
        OTEL_EXPORTER_OTLP_HEADERS=f"Authorization=Bearer%20{secret}",
        PYROSPAN_LOG_LEVEL="debug",
        PATH=os.environ["PATH"],
    )
    outputs = []
    for args in (["--info"], [PY, str(PROGRAMS / "hot_span.py"), "0.2"]):
        result = run([PYROSPAN_RUN, *args], env)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout + result.stderr)
    bad = dict(env, PYROSCOPE_SAMPLE_RATE="x", PYROSCOPE_HTTP_HEADERS="{" + secret)
    result = run([PYROSPAN_RUN, PY, "-c", "pass"], bad)
    outputs.append(result.stdout + result.stderr)
    assert "PYROSCOPE_HTTP_HEADERS=<redacted>" in outputs[-1]
    for output in outputs:
        assert secret not in output
    # The secret did reach the backend, as a header the receiver never stores.
    assert receiver.wait_for(lambda r: any(q.has_authorization for q in r.requests), timeout=15)


@pytest.mark.parametrize("where", ["app directory", "checkout"])
def test_info_finds_the_bootstrap_of_an_installed_python_wherever_it_runs(
    tmp_path: Path, where: str
) -> None:
    # The app's own directory holds no pyrospan_launch: the interpreter must import it from
    # its site-packages, as the real run does.
    cwd = tmp_path if where == "app directory" else Path(__file__).resolve().parents[2]
    result = run([PYROSPAN_RUN, "--info", PY, "-c", "pass"], clean_env(), cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert "cannot import pyrospan_launch" not in result.stdout + result.stderr
    # The real run agrees: the bootstrap loads in that interpreter from that directory.
    probe = "import sys; print('pyrospan_launch.agent.agent' in sys.modules)"
    ran = run([PYROSPAN_RUN, PY, "-c", probe], clean_env(PYROSPAN_PROFILING="false"), cwd=cwd)
    assert ran.stdout.strip() == "True", ran.stderr


def test_info_warns_of_a_python_that_cannot_load_the_bootstrap(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    subprocess.run([PY, "-m", "venv", "--without-pip", str(bare)], check=True)
    result = run(
        [PYROSPAN_RUN, "--info", str(bare / "bin" / "python"), "-c", "pass"],
        clean_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert f"{bare / 'bin' / 'python'} cannot import pyrospan_launch" in result.stdout
