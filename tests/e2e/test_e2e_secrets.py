"""End to end: a secret planted in every secret variable shows in no output and no file of any mode.

One secret goes into the basic-auth password, the Pyroscope headers and both OTLP header
variables (as users write them: JSON, ``Name=value``, percent-encoded ``Bearer`` token).
Every mode runs with it: ``--info``, a normal run with debug output, values that do not
parse, a strict failure, a backend that answers 401 and echoes the credentials it got,
``--local`` (summary, report.html, pprof files, SQLite data), ``--serve`` and
``--render``.  Everything printed and every file written is searched (gzip files
decompressed) for the secret.
"""

from __future__ import annotations

import gzip
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_backends import backend
from helpers import PROGRAMS, PYROSPAN_RUN, backend_env, clean_env, free_port, run, wait_for_http
from recording_receiver import RecordingReceiver

pytestmark = pytest.mark.e2e

PY = sys.executable
SECRET = "Zq-PLANTED-s3cr3t-91"
HOT_SPAN = [PY, str(PROGRAMS / "hot_span.py"), "0.2"]

SECRETS = {
    "PYROSCOPE_BASIC_AUTH_USER": "user",
    "PYROSCOPE_BASIC_AUTH_PASSWORD": SECRET,
    "PYROSCOPE_HTTP_HEADERS": f'{{"X-Api-Key": "{SECRET}"}}',
    "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20{SECRET}",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"X-Api-Key={SECRET}",
    "PYROSPAN_LOG_LEVEL": "debug",
}
# Values that do not parse, each holding the secret.
BAD = {
    "PYROSCOPE_HTTP_HEADERS": "{" + SECRET,
    "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization: Bearer {SECRET}",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"X-Api-Key {SECRET}",
    "PYROSCOPE_SAMPLE_RATE": "x",
}


def everything_in(directory: Path) -> Iterator[tuple[Path, bytes]]:
    """Each file under ``directory`` with its bytes, gzip files decompressed too."""
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            yield path, data
            if data[:2] == b"\x1f\x8b":
                yield path, gzip.decompress(data)


def assert_no_secret(what: str, text: str) -> None:
    assert SECRET not in text, f"the secret is in {what}:\n{text}"


def assert_no_secret_in_files(directory: Path) -> None:
    files = list(everything_in(directory))
    assert files, f"nothing written in {directory}"
    for path, data in files:
        assert SECRET.encode() not in data, f"the secret is in {path}"


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def test_info_normal_run_bad_values_and_strict_mode(receiver: RecordingReceiver) -> None:
    env = backend_env(receiver, **SECRETS)
    info = run([PYROSPAN_RUN, "--info", *HOT_SPAN], env)
    assert info.returncode == 0, info.stderr
    assert "PYROSCOPE_BASIC_AUTH_PASSWORD" in info.stdout and "<redacted>" in info.stdout
    assert_no_secret("--info", output(info))

    normal = run([PYROSPAN_RUN, *HOT_SPAN], env)
    assert normal.returncode == 0, normal.stderr
    assert "pyrospan[debug" in normal.stderr  # debug output was on
    assert_no_secret("a run with debug output", output(normal))
    # The secret did go out, as credentials the receiver saw (and never stores).
    assert receiver.wait_for(lambda r: any(q.has_authorization for q in r.requests), 15)

    bad = run([PYROSPAN_RUN, *HOT_SPAN], {**env, **BAD})
    assert bad.returncode == 0, bad.stderr
    assert "PYROSCOPE_HTTP_HEADERS=<redacted>: expected" in bad.stderr
    assert_no_secret("a run with bad values", output(bad))

    strict = run([PYROSPAN_RUN, *HOT_SPAN], {**env, **BAD, "PYROSPAN_STRICT": "true"})
    assert strict.returncode == 3, strict.stderr
    assert_no_secret("a strict failure", output(strict))


def test_backend_answering_401_with_the_credentials_echoed() -> None:
    with backend("401") as url:
        env = clean_env(
            PYROSCOPE_SERVER_ADDRESS=url,
            OTEL_EXPORTER_OTLP_ENDPOINT=url,
            PYROSCOPE_UPLOAD_INTERVAL="1",
            OTEL_BSP_SCHEDULE_DELAY="200",
            **SECRETS,
        )
        result = run([PYROSPAN_RUN, *HOT_SPAN], env)
    assert result.returncode == 0, result.stderr
    assert "spans not sent: HTTP 401 Unauthorized" in result.stderr
    assert_no_secret("the error lines about a 401", output(result))


def test_local_serve_and_render(tmp_path: Path, default_dispositions: None) -> None:
    local_dir = tmp_path / "local"
    local = run(
        [PYROSPAN_RUN, "--local", "--report-dir", str(local_dir), *HOT_SPAN],
        clean_env(**SECRETS),
    )
    assert local.returncode == 0, local.stderr
    assert "Span profiles:" in local.stderr
    assert_no_secret("--local's output", output(local))
    assert (local_dir / "report.html").is_file() and (local_dir / "pyrospan.sqlite").is_file()
    assert_no_secret_in_files(local_dir)

    serve_dir = tmp_path / "serve"
    port = free_port()
    serve = subprocess.Popen(
        [PYROSPAN_RUN, "--serve", "--port", str(port), "--report-dir", str(serve_dir)],
        env=clean_env(**SECRETS),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/api/summary", serve)
        sender = clean_env(
            PYROSCOPE_SERVER_ADDRESS=url,
            OTEL_EXPORTER_OTLP_ENDPOINT=url,
            PYROSCOPE_UPLOAD_INTERVAL="1",
            OTEL_BSP_SCHEDULE_DELAY="200",
            **SECRETS,
        )
        sent = run([PYROSPAN_RUN, *HOT_SPAN], sender)
        assert sent.returncode == 0, sent.stderr
        assert_no_secret("a program sending to --serve", output(sent))
    finally:
        serve.send_signal(signal.SIGINT)
        out, err = serve.communicate(timeout=30)
    assert "Span profiles:" in err
    assert_no_secret("--serve's output", out + err)
    assert_no_secret_in_files(serve_dir)

    render = run([PYROSPAN_RUN, "--render", str(serve_dir)], clean_env(**SECRETS))
    assert render.returncode == 0, render.stderr
    assert_no_secret("--render's output", output(render))
    assert_no_secret_in_files(serve_dir)
