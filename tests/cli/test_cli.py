"""In-process tests of the click CLI: options, --info, --help, errors (exec is captured)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyrospan_launch import __version__
from pyrospan_launch.launcher import cli, command
from pyrospan_launch.launcher.child_env import bootstrap_dir

pytestmark = pytest.mark.otel


class Exec:
    """Stands in for os.execve so the CLI's decision can be inspected in-process."""

    def __init__(self) -> None:
        self.path = ""
        self.argv: list[str] = []
        self.env: dict[str, str] = {}

    def __call__(self, path: str, argv: list[str], env: dict[str, str]) -> None:
        self.path, self.argv, self.env = path, list(argv), dict(env)
        raise SystemExit(0)


@pytest.fixture
def exec_spy(monkeypatch: pytest.MonkeyPatch) -> Exec:
    spy = Exec()
    monkeypatch.setattr(command, "exec_command", spy)
    for key in list(os.environ):
        if key.startswith(("PYROSPAN_", "PYROSCOPE_", "OTEL_")):
            monkeypatch.delenv(key)
    return spy


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli.run, list(args), env=env, prog_name="pyrospan-run")
    return result.exit_code, result.stdout, result.stderr


def test_options_only_set_their_environment_variables(exec_spy: Exec) -> None:
    code, _, _ = invoke(
        "--service-name",
        "shop",
        "--pyroscope-server",
        "http://p:4040",
        "--otlp-endpoint",
        "http://t:4318",
        "--sample-rate",
        "50",
        "--no-tracing",
        "true",
        "-m",
        "--workers",
        "2",
    )
    assert code == 0
    assert exec_spy.argv == ["true", "-m", "--workers", "2"]  # COMMAND and after: untouched
    env = exec_spy.env
    assert env["OTEL_SERVICE_NAME"] == "shop"
    assert env["PYROSCOPE_SERVER_ADDRESS"] == "http://p:4040"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://t:4318"
    assert env["PYROSCOPE_SAMPLE_RATE"] == "50"
    assert env["PYROSPAN_TRACING"] == "false"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == bootstrap_dir()


def test_double_dash_separates_command(exec_spy: Exec) -> None:
    code, _, _ = invoke("--", "true", "--info")
    assert code == 0 and exec_spy.argv == ["true", "--info"]


def test_version() -> None:
    code, out, _ = invoke("--version")
    assert code == 0 and out.strip() == f"pyrospan-run, version {__version__}"


def test_help_names_every_option() -> None:
    code, out, _ = invoke("--help")
    assert code == 0
    for option in (
        "--service-name",
        "--pyroscope-server",
        "--otlp-endpoint",
        "--sample-rate",
        "--no-profiling",
        "--no-tracing",
        "--info",
        "--check",
        "--version",
        "--help",
    ):
        assert option in out


def test_missing_command_is_a_usage_error() -> None:
    code, _, err = invoke()
    assert code == 2 and "missing COMMAND" in err


def test_command_not_found_is_127_with_one_line(exec_spy: Exec) -> None:
    code, _, err = invoke("no-such-command-xyz")
    assert code == 127
    assert err == "pyrospan-run: command not found: no-such-command-xyz\n"


def test_not_executable_file_is_126_with_hint(
    exec_spy: Exec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "app.py"
    script.write_text("print('hi')\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke("app.py")
    assert code == 126
    assert err == (
        "pyrospan-run: permission denied: app.py is not executable; "
        "did you mean: pyrospan-run python app.py\n"
    )
    code, _, err = invoke("./app.py")
    assert code == 126 and "did you mean: pyrospan-run python ./app.py" in err


def test_directory_is_126(exec_spy: Exec, tmp_path: Path) -> None:
    code, _, err = invoke(str(tmp_path))
    assert code == 126 and err.endswith("is a directory\n")


def test_bad_value_reported_before_exec_and_app_still_runs(exec_spy: Exec) -> None:
    code, _, err = invoke("true", env={"PYROSCOPE_SAMPLE_RATE": "abc"})
    assert code == 0 and exec_spy.argv == ["true"]
    assert err.splitlines() == [
        "pyrospan-run: PYROSCOPE_SAMPLE_RATE='abc': expected a positive integer (Hz) up to 10000",
        "pyrospan-run: profiling is off for this run (PYROSCOPE_SAMPLE_RATE is not valid)",
    ]


def test_strict_bad_value_exits_3_without_running(exec_spy: Exec) -> None:
    code, _, err = invoke("--strict", "true", env={"PYROSCOPE_UPLOAD_INTERVAL": "-3"})
    assert code == 3 and exec_spy.argv == []
    assert "PYROSCOPE_UPLOAD_INTERVAL='-3'" in err


def test_info_reports_configuration_and_redacts_secrets(exec_spy: Exec) -> None:
    secret = "pa55-w0rd-PLANTED"
    code, out, err = invoke(
        "--info",
        "python",
        "app.py",
        env={
            "PYROSCOPE_BASIC_AUTH_PASSWORD": secret,
            "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer {secret}",
            "PYROSCOPE_HTTP_HEADERS": f'{{"X-Api-Key": "{secret}"}}',
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "requests",
        },
    )
    assert code == 0 and exec_spy.argv == []
    assert secret not in out + err
    assert "PYROSCOPE_BASIC_AUTH_PASSWORD" in out and "<redacted>" in out
    assert "service name   app (derived from the command; set OTEL_SERVICE_NAME" in out
    assert "profiling      on:" in out and "tracing        on:" in out
    assert "span profiles  on:" in out
    assert "will load when the app imports flask" in out
    assert "requests" in out and "listed in OTEL_PYTHON_DISABLED_INSTRUMENTATIONS" in out


def test_info_explains_why_profiling_is_off() -> None:
    code, out, _ = invoke("--info", env={"PYROSCOPE_LABELS": "bad"})
    assert code == 0
    assert "profiling      off: PYROSCOPE_LABELS is not valid" in out
    assert "span profiles  off: needs both profiling and tracing" in out
    assert "PYROSCOPE_LABELS='bad': expected" in out


def test_info_shows_labels_changed_to_fit_pyroscope() -> None:
    code, out, _ = invoke("--info", env={"PYROSCOPE_LABELS": "team=" + "t" * 3000})
    assert code == 0
    assert "profiling      on" in out
    assert (
        "Changed to fit Pyroscope's limits on labels:\n"
        "  PYROSCOPE_LABELS: the value of team is 3000 bytes, more than the 2048 bytes of "
        "UTF-8 Pyroscope takes; profiles carry it cut to 2048 bytes\n"
    ) in out


def test_bare_python_runs_the_launchers_own_environment(exec_spy: Exec, tmp_path: Path) -> None:
    # `.venv/bin/pyrospan-run python app.py` with the venv not on PATH: another python on
    # PATH could not load the bootstrap, so the launcher's own interpreter is chosen.
    other = tmp_path / "python"
    other.write_text("#!/bin/sh\n")
    other.chmod(other.stat().st_mode | stat.S_IEXEC)
    own = command.own_environment_bin()
    assert own is not None, "tests run from a virtual environment"
    code, _, _ = invoke("python", "app.py", env={"PATH": str(tmp_path)})
    assert code == 0
    assert exec_spy.path == os.path.join(own, "python")
    assert exec_spy.argv[0] == exec_spy.path


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({}, "span labels    frames: each root span's work runs inside a marker frame"),
        ({"PYROSPAN_SPAN_LABELS": "tags"}, "span labels    tags: thread tags switched"),
        (
            {"_PYROSPAN_RELAY_HOST": "192.0.2.1"},
            "span labels    tags: the profile relay cannot start here (ValueError: 192.0.2.1 "
            "is not a loopback address); frames needs it",
        ),
    ],
)
def test_info_says_how_spans_reach_the_samples(env: dict[str, str], line: str) -> None:
    code, out, _ = invoke("--info", env=env)
    assert code == 0
    assert line in out


def test_a_wrong_span_labels_method_is_one_line() -> None:
    code, out, _ = invoke("--info", env={"PYROSPAN_SPAN_LABELS": "stack"})
    assert code == 0
    assert "PYROSPAN_SPAN_LABELS='stack': expected frames or tags" in out


def test_info_lists_what_the_last_run_skipped(tmp_path: Path) -> None:
    from pyrospan_launch.common.skipped import SkippedRecord

    record = tmp_path / "pyrospan-run" / "skipped-instrumentations.txt"
    SkippedRecord(str(record)).add("aiohttp-server", "DeprecationWarning: discouraged")
    code, out, _ = invoke("--info", "python", env={"XDG_CACHE_HOME": str(tmp_path)})
    assert code == 0
    assert "Skipped while the app ran, last time any was (pid " in out
    assert "  aiohttp-server   DeprecationWarning: discouraged\n" in out


def test_info_shows_each_signals_path_proxy_and_trust_without_passwords() -> None:
    code, out, err = invoke(
        "--info",
        "python",
        "app.py",
        env={
            "PYROSCOPE_SERVER_ADDRESS": "https://u:pa55-URL@pyro.example:4040/prefix?org=1",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "https://o:pa55-OTLP@tempo.example:4318",
            "HTTPS_PROXY": "http://p:pa55-PROXY@proxy.example:3128",
            "no_proxy": "tempo.example",
            "SSL_CERT_FILE": "/ca/private.pem",
            "REQUESTS_CA_BUNDLE": "",
            "CURL_CA_BUNDLE": "",
            "NO_PROXY": "",
        },
    )
    assert code == 0
    assert "pa55" not in out + err
    assert (
        "profiles  pyroscope-io -> the relay on 127.0.0.1 (never through a proxy) -> "
        "https://pyro.example:4040/prefix?org=1 through the proxy http://proxy.example:3128 "
        "(HTTPS_PROXY), basic auth as u from the user:password in PYROSCOPE_SERVER_ADDRESS"
    ) in out
    assert "TLS trusts SSL_CERT_FILE=/ca/private.pem" in out
    # requests reads the lower-case no_proxy first: spans go directly.
    assert (
        "spans     OTLP exporter -> https://o:<redacted>@tempo.example:4318/v1/traces directly"
        in out
    )
    assert "TLS trusts /ca/private.pem (from SSL_CERT_FILE" in out


def test_info_shows_thread_tags_pushes_going_through_the_relay_with_its_trust() -> None:
    code, out, err = invoke(
        "--info",
        "python",
        "app.py",
        env={
            "PYROSPAN_SPAN_LABELS": "tags",
            "PYROSCOPE_SERVER_ADDRESS": "https://pyro.example:4040",
            "OTEL_EXPORTER_OTLP_CERTIFICATE": "/ca/private.pem",
            "SSL_CERT_FILE": "",
            "SSL_CERT_DIR": "",
            "REQUESTS_CA_BUNDLE": "",
            "CURL_CA_BUNDLE": "",
        },
    )
    assert code == 0, err
    assert (
        "profiles  pyroscope-io -> the relay on 127.0.0.1 (never through a proxy) -> "
        "https://pyro.example:4040 "
    ) in out
    trusts = "TLS trusts the system's CA store + OTEL_EXPORTER_OTLP_CERTIFICATE=/ca/private.pem"
    assert trusts in out
