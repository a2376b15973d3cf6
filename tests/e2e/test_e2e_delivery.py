"""End to end: profiles reach the backend through proxies, TLS and URL credentials, or one
line says why.

Real parts on loopback addresses only: Debian's tinyproxy on 127.0.0.1, backends on
127.0.0.2 (so the proxy is really used: nothing makes 127.0.0.2 direct), a TLS server
with a CA made by openssl in the test, and backends that refuse in every way.  The
program runs under ``pyrospan-run`` with ``PYROSCOPE_UPLOAD_INTERVAL=1``.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from fake_backends import backend
from helpers import PROGRAMS, PYROSPAN_RUN, clean_env, run
from network_parts import Echo, echo_backend, forward_proxy, private_ca, tls_wrapped
from recording_receiver import RecordingReceiver

from pyrospan_launch.common import trust

pytestmark = pytest.mark.e2e

PY = sys.executable
HOT_SPAN = str(PROGRAMS / "hot_span.py")
SECRET = "s3cr@t-Pw"  # what the user's password is
SECRET_IN_URL = "s3cr%40t-Pw"  # and how it is written in a URL


# What the test machine may have set that would change what these tests show.
NETWORK_VARIABLES = (
    *trust.ALL_VARIABLES,
    *(f"{name}_PROXY" for name in ("HTTP", "HTTPS", "ALL", "NO")),
    *(f"{name}_proxy" for name in ("http", "https", "all", "no")),
)


def network_clean_env(**extra: str) -> dict[str, str]:
    """clean_env() without proxy or trust variables of the machine's own."""
    env = {k: v for k, v in clean_env().items() if k not in NETWORK_VARIABLES}
    env.update(extra)
    return env


def env_for(url: str, **extra: str) -> dict[str, str]:
    env = network_clean_env(
        PYROSCOPE_SERVER_ADDRESS=url,
        OTEL_EXPORTER_OTLP_ENDPOINT=url,
        PYROSCOPE_UPLOAD_INTERVAL="1",
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_SERVICE_NAME="delivered",
    )
    env.update(extra)
    return env


def hot_span(env: dict[str, str], seconds: float = 2.5) -> subprocess.CompletedProcess[str]:
    return run([PYROSPAN_RUN, PY, HOT_SPAN, str(seconds)], env)


@pytest.fixture
def receiver2() -> Iterator[RecordingReceiver]:
    """A recording receiver on 127.0.0.2."""
    with RecordingReceiver(host="127.0.0.2") as r:
        yield r


# -- proxies ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["frames", "tags"])
@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_a_proxy_that_refuses_loopback_still_gets_every_profile(
    tmp_path: Path, receiver2: RecordingReceiver, method: str, variable: str
) -> None:
    with forward_proxy(tmp_path, refuse=("127.0.0.1", "localhost")) as proxy:
        env = env_for(receiver2.url, PYROSPAN_SPAN_LABELS=method, **{variable: proxy.url})
        done = hot_span(env)
        assert done.returncode == 0, done.stderr
        assert "pyrospan" not in done.stderr, done.stderr
        assert receiver2.wait_for(lambda r: r.spans, timeout=10)
        pushes = [line for line in proxy.requests() if "/push.v1.PusherService/Push" in line]
        profiles = {info.seq for info in receiver2.requests if "Push" in info.path}
        # Every push went through the proxy to 127.0.0.2, and every one arrived.
        assert len(pushes) >= 3, proxy.requests()
        assert len(profiles) == len(pushes)
        assert all(line.startswith(f"POST http://127.0.0.2:{receiver2.port}/") for line in pushes)
        assert proxy.refused() == 0, proxy.text()
        assert f"POST http://127.0.0.2:{receiver2.port}/v1/traces" in proxy.requests()
        assert receiver2.samples_with_label("span_name", "checkout")


def test_no_proxy_sends_profiles_and_spans_directly(
    tmp_path: Path, receiver2: RecordingReceiver
) -> None:
    with forward_proxy(tmp_path) as proxy:
        env = env_for(receiver2.url, HTTP_PROXY=proxy.url, NO_PROXY="127.0.0.0/8")
        done = hot_span(env, 1.5)
        assert done.returncode == 0, done.stderr
        assert receiver2.wait_for(lambda r: r.spans and r.profiles, timeout=10)
        assert proxy.requests() == []


@pytest.mark.parametrize("method", ["frames", "tags"])
def test_https_through_a_proxy_shows_it_only_connect(tmp_path: Path, method: str) -> None:
    ca = private_ca(tmp_path)
    with RecordingReceiver(host="127.0.0.2") as receiver:
        assert receiver._server is not None
        tls_wrapped(receiver._server, ca)
        url = f"https://user:{SECRET_IN_URL}@127.0.0.2:{receiver.port}"
        with forward_proxy(tmp_path, refuse=("127.0.0.1",)) as proxy:
            env = env_for(
                url,
                OTEL_EXPORTER_OTLP_ENDPOINT=f"https://127.0.0.2:{receiver.port}",
                HTTPS_PROXY=proxy.url,
                SSL_CERT_FILE=str(ca.ca),
                PYROSCOPE_TENANT_ID="tenant-9",
                PYROSPAN_SPAN_LABELS=method,
            )
            done = hot_span(env)
            assert done.returncode == 0, done.stderr
            assert "pyrospan" not in done.stderr, done.stderr
            assert receiver.wait_for(lambda r: r.spans, timeout=10)
            lines = proxy.requests()
            text = proxy.text()
        pushes = [info for info in receiver.requests if "Push" in info.path]
        assert len(pushes) >= 3
        assert all(info.has_authorization and info.tenant_id == "tenant-9" for info in pushes)
        assert lines and all(line == f"CONNECT 127.0.0.2:{receiver.port}" for line in lines)
        for leaked in ("push.v1", "v1/traces", "Authorization", "tenant-9", SECRET, "user:"):
            assert leaked not in text


def test_a_proxy_that_cannot_pass_pushes_on_is_named_once(tmp_path: Path) -> None:
    with forward_proxy(tmp_path, refuse=("127.0.0.2",)) as proxy:
        with echo_backend("127.0.0.2") as (url, echo):
            env = env_for(
                url, HTTP_PROXY=proxy.url, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.2:9"
            )
            done = hot_span(env)
        assert not echo.requests
    lines = [line for line in done.stderr.splitlines() if "profiles not sent" in line]
    # tinyproxy answers 403 and closes before reading the body: a reset, or the 403, each
    # said once.
    assert 1 <= len(lines) == len(set(lines)) <= 2, done.stderr
    for line in lines:
        assert "connection reset at" in line or "(the server or the proxy)" in line
        assert f"through the proxy {proxy.url} (HTTP_PROXY)" in line
        assert "check HTTP_PROXY and NO_PROXY" in line
    env = env_for(url, HTTP_PROXY="http://127.0.0.1:9", OTEL_EXPORTER_OTLP_ENDPOINT=url)
    done = hot_span(env, 1.5)
    lines = [line for line in done.stderr.splitlines() if "profiles not sent" in line]
    assert len(lines) == 1, done.stderr
    assert "connection refused at" in lines[0] and "check HTTP_PROXY and NO_PROXY" in lines[0]


def test_local_mode_reaches_its_receiver_whatever_proxy_is_set(tmp_path: Path) -> None:
    with forward_proxy(tmp_path, refuse=("127.0.0.1", "localhost")) as proxy:
        env = network_clean_env(
            HTTP_PROXY=proxy.url, https_proxy=proxy.url, ALL_PROXY=proxy.url, NO_PROXY=""
        )
        done = run(
            [PYROSPAN_RUN, "--local", "--report-dir", str(tmp_path / "r"), PY, HOT_SPAN, "1.5"],
            env,
        )
        assert done.returncode == 0, done.stderr
        assert "Span profiles: 1 root span, CPU" in done.stderr, done.stderr
        assert "CPU 0 ms" not in done.stderr, done.stderr
        assert proxy.requests() == []


# -- TLS with a private CA -------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "method"),
    [
        ("SSL_CERT_FILE", "frames"),
        ("SSL_CERT_DIR", "frames"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "frames"),
        ("REQUESTS_CA_BUNDLE", "frames"),
        # Thread tags' pushes go through the relay too: the same variables serve them.
        ("SSL_CERT_FILE", "tags"),
        ("SSL_CERT_DIR", "tags"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "tags"),
        ("REQUESTS_CA_BUNDLE", "tags"),
    ],
)
def test_one_variable_makes_both_signals_trust_a_private_ca(
    tmp_path: Path, variable: str, method: str
) -> None:
    ca = private_ca(tmp_path)
    value = str(ca.ca_dir if variable == "SSL_CERT_DIR" else ca.ca)
    with RecordingReceiver(host="127.0.0.2") as receiver:
        assert receiver._server is not None
        tls_wrapped(receiver._server, ca)
        env = env_for(
            f"https://127.0.0.2:{receiver.port}", PYROSPAN_SPAN_LABELS=method, **{variable: value}
        )
        done = hot_span(env, 1.5)
        assert done.returncode == 0, done.stderr
        assert "pyrospan" not in done.stderr, done.stderr
        assert receiver.wait_for(lambda r: r.spans and r.profiles, timeout=10)
        # The span's own samples, of its own function, carry its span_id.
        span_id = done.stdout.split()[-1]
        labelled = receiver.samples_with_label("span_id", span_id)
        assert any(sample.leaf == "burn_cpu_in_span" for sample in labelled), method
        assert all(sample.labels.get("span_name") == "checkout" for sample in labelled)


@pytest.mark.parametrize("method", ["frames", "tags"])
def test_an_untrusted_certificate_is_said_once_with_the_variables(
    tmp_path: Path, method: str
) -> None:
    ca = private_ca(tmp_path)
    with echo_backend("127.0.0.2", ca=ca) as (url, _):
        env = env_for(
            url, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.2:9", PYROSPAN_SPAN_LABELS=method
        )
        done = hot_span(env)
    lines = [line for line in done.stderr.splitlines() if line.startswith("pyrospan: profiles")]
    assert lines[0].startswith("pyrospan: profiles not sent: TLS: the certificate is not trusted")
    assert "SSL_CERT_FILE" in lines[0] and url.removeprefix("https://") in lines[0]


# -- the server URL --------------------------------------------------------------------


@pytest.mark.parametrize("method", ["frames", "tags"])
def test_url_credentials_prefix_and_query_mean_the_same_with_and_without_the_relay(
    method: str,
) -> None:
    with echo_backend("127.0.0.2") as (url, echo):
        base = url.replace("http://", f"http://user:{SECRET_IN_URL}@") + "/prefix?org=7&x=1"
        env = env_for(base, PYROSPAN_SPAN_LABELS=method, PYROSPAN_LOG_LEVEL="debug")
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.2:9"  # spans: not this test's
        done = hot_span(env, 1.5)
        assert done.returncode == 0, done.stderr
        info = run([PYROSPAN_RUN, "--info", PY, HOT_SPAN], env)
    pushes = [(target, headers) for target, headers in echo.requests if "Push" in target]
    assert pushes
    expected = "Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode()
    for target, headers in pushes:
        assert target == "/prefix/push.v1.PusherService/Push?org=7&x=1"
        assert headers["authorization"] == expected
    for output in (done.stdout, done.stderr, info.stdout, info.stderr):
        assert SECRET not in output and SECRET_IN_URL not in output
    assert "user:<redacted>@127.0.0.2" in info.stdout


@pytest.mark.parametrize("method", ["frames", "tags"])
def test_basic_auth_variables_win_over_url_credentials(method: str) -> None:
    with echo_backend("127.0.0.2") as (url, echo):
        env = env_for(
            url.replace("http://", "http://url-user:url-pass@"),
            PYROSPAN_SPAN_LABELS=method,
            PYROSCOPE_BASIC_AUTH_USER="var-user",
            PYROSCOPE_BASIC_AUTH_PASSWORD=SECRET,
        )
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.2:9"
        hot_span(env, 1.5)
    expected = "Basic " + base64.b64encode(f"var-user:{SECRET}".encode()).decode()
    pushes = [headers for target, headers in echo.requests if "Push" in target]
    assert pushes and all(headers["authorization"] == expected for headers in pushes)


# -- failures: one line each -----------------------------------------------------------

EXPECTED = {
    "401": ("HTTP 401 Unauthorized", "PYROSCOPE_BASIC_AUTH_USER"),
    "400": ("HTTP 400 Bad Request: series label value too long", "the server's limits"),
    "503": ("HTTP 503 Service Unavailable", "the server failed"),
    "refused": ("connection refused", "PYROSCOPE_SERVER_ADDRESS"),
}


def run_against(url: str, method: str = "frames") -> tuple[subprocess.CompletedProcess[str], float]:
    env = env_for(url, OTEL_EXPORTER_OTLP_ENDPOINT=url, PYROSPAN_SPAN_LABELS=method)
    process = subprocess.Popen(
        [PYROSPAN_RUN, PY, HOT_SPAN, "2.5"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    app_done = time.monotonic()
    out, err = process.communicate(timeout=60)
    gone = time.monotonic()
    return subprocess.CompletedProcess(process.args, process.returncode, first + out, err), (
        gone - app_done
    )


# Thread tags too: their pushes go through the relay, which reads the answers.
@pytest.mark.parametrize("method", ["frames", "tags"])
@pytest.mark.parametrize("kind", ["401", "400", "503", "refused", "blackhole"])
def test_a_failing_profile_backend_is_said_once(kind: str, method: str) -> None:
    context: AbstractContextManager[str | tuple[str, Echo]]
    if kind in ("400", "503"):
        body = b'{"code":"invalid_argument","message":"series label value too long"}'
        context = echo_backend("127.0.0.1", status=int(kind), body=body)
    else:
        context = backend(kind)
    with context as started:
        url = started if isinstance(started, str) else started[0]
        done, exit_after_app = run_against(url, method)
    assert done.returncode == 0, done.stderr
    assert exit_after_app < 1.0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == len(set(lines)), lines  # nothing twice
    assert all(line.startswith("pyrospan: ") for line in lines), lines
    profile_lines = [line for line in lines if line.startswith("pyrospan: profiles")]
    shown = url.removeprefix("http://")
    if kind == "blackhole":
        # What was lost is said once, at exit; a run that outlasts the 10 s forward timeout
        # (a loaded machine) also says the timeout, and a full queue, once each.
        summary = [line for line in profile_lines if "were not delivered this run" in line]
        assert len(summary) == 1 and "still waiting at exit" in summary[0], lines
        for line in set(profile_lines) - set(summary):
            assert "no answer in time at" in line or "is not keeping up" in line, line
        return
    cause, check = EXPECTED[kind]
    first = [line for line in profile_lines if "profiles not sent:" in line]
    assert len(first) == 1, lines
    assert f"profiles not sent: {cause}" in first[0] and shown in first[0] and check in first[0]
    summary = [line for line in profile_lines if "were not delivered this run" in line]
    assert len(summary) == 1, lines
    assert "Authorization" not in done.stderr and "X-Pyrospan-Relay" not in done.stderr


@pytest.mark.parametrize("method", ["frames", "tags"])
def test_a_program_that_ends_before_its_first_upload_still_delivers_its_window(
    receiver2: RecordingReceiver, method: str
) -> None:
    # Its only push is the exit flush's, on a new connection to the relay, when Python
    # 3.12+ starts no more threads.
    env = env_for(receiver2.url, PYROSPAN_SPAN_LABELS=method, PYROSCOPE_UPLOAD_INTERVAL="10")
    done = hot_span(env, 0.5)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    span_id = done.stdout.split()[-1]
    assert receiver2.wait_for(lambda r: r.samples_with_label("span_id", span_id), timeout=10)
    labelled = receiver2.samples_with_label("span_id", span_id)
    assert any(sample.leaf == "burn_cpu_in_span" for sample in labelled)


def test_thread_tags_without_a_relay_push_directly_and_say_so_once(
    receiver2: RecordingReceiver,
) -> None:
    # The relay binds to loopback only: pointed elsewhere, it refuses to start.
    env = env_for(receiver2.url, PYROSPAN_SPAN_LABELS="tags", _PYROSPAN_RELAY_HOST="192.0.2.1")
    done = hot_span(env, 1.5)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "pyrospan: profiles: the profile relay could not start (ValueError: 192.0.2.1 is not "
        "a loopback address); pyroscope-io pushes to the server itself, and a push it cannot "
        "deliver goes unreported"
    ]
    span_id = done.stdout.split()[-1]
    assert receiver2.wait_for(lambda r: r.samples_with_label("span_id", span_id), timeout=10)
    labelled = receiver2.samples_with_label("span_id", span_id)
    assert any(sample.leaf == "burn_cpu_in_span" for sample in labelled)


# -- pyrospan-run --check --------------------------------------------------------------

CHECK_EXPECTED = {
    "healthy": (0, "accepted: HTTP 200", "accepted: HTTP 2xx"),
    "401": (1, "NOT accepted: HTTP 401 Unauthorized", "NOT accepted: HTTP 401 Unauthorized"),
    "400": (1, "NOT accepted: HTTP 400 Bad Request: series label", "NOT accepted: HTTP 400"),
    "503": (1, "NOT accepted: HTTP 503 Service Unavailable", "NOT accepted: HTTP 503"),
    "refused": (1, "NOT accepted: connection refused", "NOT accepted: connection refused"),
    "blackhole": (1, "NOT accepted: no answer in time", "NOT accepted: no answer in time"),
}


@pytest.mark.parametrize("kind", list(CHECK_EXPECTED))
def test_check_says_what_each_backend_answered(kind: str) -> None:
    status, profile_says, span_says = CHECK_EXPECTED[kind]
    body = b'{"code":"invalid_argument","message":"series label value too long"}'
    context: AbstractContextManager[RecordingReceiver | str | tuple[str, Echo]]
    if kind == "healthy":
        context = RecordingReceiver()
    elif kind in ("400", "503"):
        context = echo_backend("127.0.0.1", status=int(kind), body=body)
    else:
        context = backend(kind)
    with context as started:
        url = (
            started.url
            if isinstance(started, RecordingReceiver)
            else (started if isinstance(started, str) else started[0])
        )
        env = env_for(
            url.replace("http://", f"http://user:{SECRET_IN_URL}@"),
            OTEL_EXPORTER_OTLP_ENDPOINT=url,
            OTEL_EXPORTER_OTLP_HEADERS=f"Authorization=Bearer%20{SECRET_IN_URL}",
            PYROSCOPE_TENANT_ID="tenant-3",
        )
        del env["OTEL_SERVICE_NAME"]  # named from the COMMAND, which is not run
        begun = time.monotonic()
        done = run([PYROSPAN_RUN, "--check", PY, "shop.py"], env, timeout=30)
        took = time.monotonic() - begun
        if isinstance(started, RecordingReceiver):
            assert started.profiles and started.spans
            pushes = [info for info in started.requests if "Push" in info.path]
            assert all(info.has_authorization and info.tenant_id == "tenant-3" for info in pushes)
    assert took < 10, (took, done.stdout)
    assert done.returncode == status, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    profile_line = next(line for line in lines if line.strip().startswith("profiles"))
    span_line = next(line for line in lines if line.strip().startswith("spans"))
    assert profile_says in profile_line, done.stdout
    assert span_says in span_line, done.stdout
    assert "service_name=shop" in done.stdout and "service.name=shop" in done.stdout
    assert url.removeprefix("http://") in done.stdout
    assert (
        SECRET not in done.stdout + done.stderr and SECRET_IN_URL not in done.stdout + done.stderr
    )


@pytest.mark.parametrize("method", ["frames", "tags"])
def test_check_through_a_proxy_names_it(
    tmp_path: Path, receiver2: RecordingReceiver, method: str
) -> None:
    with forward_proxy(tmp_path, refuse=("127.0.0.1",)) as proxy:
        env = env_for(receiver2.url, HTTP_PROXY=proxy.url, PYROSPAN_SPAN_LABELS=method)
        done = run([PYROSPAN_RUN, "--check"], env, timeout=30)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"through the proxy {proxy.url} (HTTP_PROXY)" in done.stdout
        assert [line for line in proxy.requests() if "Push" in line]
        assert proxy.refused() == 0
