"""In-process tests of the local-mode options of the CLI (the run itself is captured).

tests/test_local_e2e.py runs the same options for real; these pin the CLI's decisions:
which mode, which directory, what the program gets, and the one-line errors.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pytest
from click.testing import CliRunner

from pyrospan_launch.launcher import cli, command
from pyrospan_launch.local import modes


class Captured:
    """Stands in for the local run and for exec, recording what the CLI asked for."""

    def __init__(self) -> None:
        self.local: dict[str, Any] | None = None
        self.exec_argv: list[str] | None = None

    def run_local(
        self,
        path: str,
        argv: Sequence[str],
        env: dict[str, str],
        report_dir: str,
        port: int,
        **options: Any,
    ) -> int:
        self.local = {"argv": list(argv), "env": env, "report_dir": report_dir, "port": port}
        self.local.update(options)
        return 0

    def exec_command(self, path: str, argv: list[str], env: dict[str, str]) -> None:
        self.exec_argv = list(argv)
        raise SystemExit(0)


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Captured:
    spy = Captured()
    monkeypatch.setattr(modes, "run_local", spy.run_local)
    monkeypatch.setattr(command, "exec_command", spy.exec_command)
    for key in list(os.environ):
        if key.startswith(("PYROSPAN_", "PYROSCOPE_", "OTEL_")):
            monkeypatch.delenv(key)
    return spy


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli.run, list(args), env=env, prog_name="pyrospan-run")
    return result.exit_code, result.stderr


def test_local_runs_the_command_untouched_with_its_directory_and_port(captured: Captured) -> None:
    options = ["--local", "--report-dir", "out", "--port", "8123"]
    backend = {"PYROSCOPE_SERVER_ADDRESS": "not a url", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier"}
    code, err = invoke(*options, "true", "--local", "-x", env=backend)
    assert code == 0, err
    # Local mode sets the backend itself, so the user's backend values are not even checked.
    assert err == ""
    assert captured.local is not None and captured.exec_argv is None
    assert captured.local["argv"] == ["true", "--local", "-x"]
    assert captured.local["shown"] == ("true", "--local", "-x")
    assert (captured.local["report_dir"], captured.local["port"]) == ("out", 8123)
    env = captured.local["env"]
    assert "PYROSCOPE_SERVER_ADDRESS" not in env and "OTEL_EXPORTER_OTLP_PROTOCOL" not in env
    assert "PYROSPAN_LOCAL" not in env and env["PYROSPAN_REPORT_DIR"] == "out"


def test_environment_alone_selects_local_mode(captured: Captured) -> None:
    code, err = invoke("true", env={"PYROSPAN_LOCAL": "yes", "PYROSPAN_REPORT_DIR": "/tmp/r"})
    assert code == 0, err
    assert captured.local is not None and captured.local["report_dir"] == "/tmp/r"
    assert captured.local["port"] == 0  # any free port


def test_bad_local_value_is_one_line_and_the_program_runs_as_usual(captured: Captured) -> None:
    code, err = invoke("true", env={"PYROSPAN_LOCAL": "maybe"})
    assert code == 0
    assert err == (
        "pyrospan-run: PYROSPAN_LOCAL='maybe': expected true or false\n"
        "pyrospan-run: local mode is off for this run (PYROSPAN_LOCAL is not valid)\n"
    )
    assert captured.exec_argv == ["true"] and captured.local is None


def test_bad_local_value_in_strict_mode_exits_3(captured: Captured) -> None:
    code, err = invoke("true", env={"PYROSPAN_LOCAL": "maybe", "PYROSPAN_STRICT": "true"})
    assert code == 3
    assert err.splitlines()[-1] == "pyrospan-run: PYROSPAN_STRICT=true: not starting the program"
    assert captured.exec_argv is None and captured.local is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--serve", "python", "app.py"], "--serve and --render take no COMMAND"),
        (["--render", "d", "python"], "--serve and --render take no COMMAND"),
        (["--serve", "--render", "d"], "use either --serve or --render"),
        (["--port", "80", "python", "app.py"], "--port needs --local or --serve"),
        (["--local"], "missing COMMAND"),
        (["--port", "70000", "--serve"], "70000 is not in the range 0<=x<=65535"),
    ],
)
def test_usage_errors(captured: Captured, args: list[str], message: str) -> None:
    code, err = invoke(*args)
    assert code == 2 and message in err
    assert captured.local is None and captured.exec_argv is None


def test_help_names_the_local_options() -> None:
    result = CliRunner().invoke(cli.run, ["--help"])
    for option in ("--local", "--report-dir", "--serve", "--render", "--port", "PYROSPAN_LOCAL"):
        assert option in result.stdout
