"""Unit tests of the delivery rules: proxies, the upstream URL, trust, causes, credentials."""

from __future__ import annotations

import base64
import ssl

import pytest

from pyrospan_launch.agent.relay.delivery import Deliveries, describe
from pyrospan_launch.agent.relay.upstream import Answer, ProxyNotUsable, Upstream, short_reason
from pyrospan_launch.common import proxies, redact, trust
from pyrospan_launch.settings.config import resolve, split_credentials
from pyrospan_launch.settings.registry import setting

PROXY = "http://127.0.0.1:3128"


@pytest.mark.parametrize(
    ("environ", "url", "expected"),
    [
        ({}, "http://h:1", None),
        ({"HTTP_PROXY": PROXY}, "http://h:1", "HTTP_PROXY"),
        ({"http_proxy": PROXY}, "http://h:1", "http_proxy"),
        ({"HTTP_PROXY": PROXY}, "https://h:1", None),  # https needs HTTPS_PROXY or ALL_PROXY
        ({"HTTPS_PROXY": PROXY}, "https://h:1", "HTTPS_PROXY"),
        ({"ALL_PROXY": PROXY}, "https://h:1", "ALL_PROXY"),
        ({"all_proxy": PROXY, "HTTP_PROXY": ""}, "http://h:1", "all_proxy"),
        # The upper-case name set at all, even empty, hides the lower-case one.
        ({"HTTP_PROXY": "", "http_proxy": PROXY}, "http://h:1", None),
        ({"HTTP_PROXY": PROXY, "NO_PROXY": "h"}, "http://h:1", None),
        ({"HTTP_PROXY": PROXY, "NO_PROXY": "", "no_proxy": "h"}, "http://h:1", "HTTP_PROXY"),
        ({"HTTP_PROXY": PROXY, "no_proxy": "h"}, "http://h:1", None),
        ({"HTTP_PROXY": PROXY, "NO_PROXY": "example.com"}, "http://a.example.com", None),
        ({"HTTP_PROXY": PROXY, "NO_PROXY": "example.com"}, "http://notexample.com", "HTTP_PROXY"),
        ({"HTTP_PROXY": PROXY, "NO_PROXY": "127.0.0.0/8"}, "http://127.0.0.2:1", None),
        # localhost does not cover 127.0.0.1, and an entry with a port never matches.
        ({"HTTP_PROXY": PROXY, "NO_PROXY": "localhost"}, "http://127.0.0.1:1", "HTTP_PROXY"),
        ({"HTTP_PROXY": PROXY, "NO_PROXY": "h:1"}, "http://h:1", "HTTP_PROXY"),
        ({"HTTP_PROXY": PROXY, "NO_PROXY": "*"}, "http://h:1", None),
        ({"HTTP_PROXY": PROXY, "REQUEST_METHOD": "GET"}, "http://h:1", None),
        ({"HTTP_PROXY": "ftp://p:1"}, "http://h:1", None),
    ],
)
def test_profiles_take_the_proxy_pyroscope_io_takes(
    environ: dict[str, str], url: str, expected: str | None
) -> None:
    found = proxies.profile_proxy(url, environ)
    assert (found.variable if found else None) == expected


def test_proxy_credentials_become_proxy_authorization_and_are_never_shown() -> None:
    found = proxies.profile_proxy("http://h", {"HTTP_PROXY": "http://me:p%40ss@proxy:8080"})
    assert found is not None
    assert found.authorization == "Basic " + base64.b64encode(b"me:p@ss").decode()
    assert found.shown == "http://proxy:8080 (HTTP_PROXY)"
    assert (found.host, found.port) == ("proxy", 8080)
    assert proxies.profile_proxy("http://h", {"HTTP_PROXY": "proxy:3128"}).port == 3128  # type: ignore[union-attr]


def test_spans_take_the_proxy_requests_takes() -> None:
    # Lower case first, unlike pyroscope-io.
    env = {"HTTP_PROXY": "http://upper:1", "http_proxy": "http://lower:2", "NO_PROXY": "x"}
    assert proxies.span_proxy("http://h", env).host == "lower"  # type: ignore[union-attr]
    assert proxies.span_proxy("http://h", {**env, "NO_PROXY": "", "no_proxy": "h"}) is None
    assert proxies.span_proxy("http://10.1.2.3", {**env, "no_proxy": "10.0.0.0/8"}) is None


def test_direct_to_adds_the_host_to_each_no_proxy_variable() -> None:
    assert proxies.direct_to({}) == {"NO_PROXY": "127.0.0.1"}
    assert proxies.direct_to({"NO_PROXY": "a, b"}) == {"NO_PROXY": "a,b,127.0.0.1"}
    assert proxies.direct_to({"no_proxy": "a", "NO_PROXY": ""}) == {
        "no_proxy": "a,127.0.0.1",
        "NO_PROXY": "127.0.0.1",
    }
    assert proxies.direct_to({"NO_PROXY": "127.0.0.1"}) == {}


def test_upstream_reads_the_url_as_pyroscope_io_does() -> None:
    upstream = Upstream("http://u:p%40ss@h:8080/prefix/?x=1", {})
    assert (
        upstream.target("/push.v1.PusherService/Push") == "/prefix/push.v1.PusherService/Push?x=1"
    )
    assert upstream.target("/push?y=2") == "/prefix/push?x=1&y=2"
    assert upstream.shown == "http://h:8080/prefix"
    assert Upstream("https://h", {}).shown == "https://h:443"


def test_upstream_refuses_a_proxy_it_cannot_speak() -> None:
    upstream = Upstream("http://h:1", {"ALL_PROXY": "socks5://127.0.0.1:1"})
    with pytest.raises(ProxyNotUsable):
        upstream.send("/push", [], b"", 1.0)


def test_short_reason_is_one_short_printable_line() -> None:
    assert short_reason(b'{"code":"x","message":"too many labels"}') == "too many labels"
    assert short_reason(b"first line\x1b[31m\nsecond") == "first line [31m"
    assert len(short_reason(b"x" * 5000)) == 163


@pytest.mark.parametrize(
    ("answer", "error", "starts", "check"),
    [
        (Answer(401, ""), None, "HTTP 401 Unauthorized from http://h:1", "PYROSCOPE_BASIC_AUTH"),
        (Answer(403, "secret"), None, "HTTP 403 Forbidden from", "PYROSCOPE_TENANT_ID"),
        (Answer(400, "bad label"), None, "HTTP 400 Bad Request: bad label from", "limits"),
        (Answer(404, ""), None, "HTTP 404 Not Found from", "PYROSCOPE_SERVER_ADDRESS"),
        (Answer(503, ""), None, "HTTP 503 Service Unavailable from", "not retried"),
        (None, ConnectionRefusedError(111, "x"), "connection refused at", "SERVER_ADDRESS"),
        (None, TimeoutError("timed out"), "no answer in time at", "SERVER_ADDRESS"),
        (None, OSError("Tunnel connection failed: 403 Forbidden"), "the proxy refused", "NO_"),
        (None, ssl.SSLCertVerificationError(1, "x"), "TLS: the certificate", "SSL_CERT_FILE"),
    ],
)
def test_each_cause_names_the_server_and_what_to_check(
    answer: Answer | None, error: BaseException | None, starts: str, check: str
) -> None:
    environ = {"HTTP_PROXY": PROXY} if "proxy" in starts else {}
    upstream = Upstream("http://user:pw@h:1", environ)
    cause = describe(upstream, answer, error)
    assert cause.startswith(starts) and check in cause
    assert "pw" not in cause
    assert "secret" not in cause


def test_an_answer_through_a_plain_http_proxy_may_be_the_proxys() -> None:
    upstream = Upstream("http://h:1", {"HTTP_PROXY": PROXY})
    cause = describe(upstream, Answer(403, ""), None)
    assert "(the server or the proxy); check HTTP_PROXY and NO_PROXY, then PYROSCOPE_BASIC" in cause


def test_deliveries_say_each_cause_once_per_interval_and_sum_up() -> None:
    said: list[str] = []
    now = [0.0]
    deliveries = Deliveries(10, ["hunter22"], clock=lambda: now[0], say=said.append)
    upstream = Upstream("http://h:1", {})
    for _ in range(3):
        deliveries.failed(upstream, Answer(400, "label hunter22 too long"))
    now[0] = 11.0
    deliveries.failed(upstream, Answer(400, "label hunter22 too long"))
    deliveries.failed(upstream, error=ConnectionRefusedError())
    assert len(said) == 3
    assert said[0].startswith("profiles not sent: HTTP 400 Bad Request: label <redacted>")
    assert "(3 times in the last 11 s)" in said[1]
    assert "connection refused" in said[2]
    summary = deliveries.summary(failed=5, dropped=1, left=0, forwarded=4)
    assert summary is not None and summary.startswith("profiles: 6 of 10 pushes were not")
    assert deliveries.summary(0, 0, 0, 9) is None


def test_url_credentials_are_basic_auth_and_the_variables_win() -> None:
    assert split_credentials("https://u:p%40ss@h:1/x?y") == ("https://h:1/x?y", "u", "p@ss")
    assert split_credentials("http://h?x=@") == ("http://h?x=@", "", "")
    assert split_credentials("http://u:p@h?x=1") == ("http://h?x=1", "u", "p")
    profiler = resolve({"PYROSCOPE_SERVER_ADDRESS": "http://u:pw@h"}).profiler
    assert profiler is not None
    assert (profiler.server_address, profiler.basic_auth_user, profiler.basic_auth_password) == (
        "http://h",
        "u",
        "pw",
    )
    env = {"PYROSCOPE_SERVER_ADDRESS": "http://u:pw@h", "PYROSCOPE_BASIC_AUTH_USER": "v"}
    profiler = resolve(env).profiler
    assert profiler is not None and (profiler.basic_auth_user, profiler.basic_auth_password) == (
        "v",
        "",
    )


def test_url_passwords_are_secrets_and_never_shown() -> None:
    env = {"PYROSCOPE_SERVER_ADDRESS": "http://u:p%40ss@h:1", "HTTPS_PROXY": "http://a:bcde@p"}
    assert {"p%40ss", "p@ss", "bcde"} <= set(redact.secret_values(env))
    shown = setting("PYROSCOPE_SERVER_ADDRESS").shown(env)
    assert shown == "http://u:<redacted>@h:1"
    bad = {"PYROSCOPE_SERVER_ADDRESS": "ftp://u:hidden@h"}
    assert "hidden" not in str(resolve(bad).errors[0])


def test_spans_are_given_the_openssl_trust_unless_told_otherwise() -> None:
    assert trust.span_certificate_default({"SSL_CERT_FILE": "/ca.pem"}) == "/ca.pem"
    assert trust.span_certificate_default({"SSL_CERT_DIR": "/certs"}) == "/certs"
    told = {"SSL_CERT_FILE": "/ca.pem", "REQUESTS_CA_BUNDLE": "/other.pem"}
    assert trust.span_certificate_default(told) is None
    assert "REQUESTS_CA_BUNDLE=/other.pem" in trust.spans_trust(told)
    assert "certifi" in trust.spans_trust({})
    assert trust.profiles_trust({}, through_relay=True) == "the system's CA store"
    assert "OTEL_EXPORTER_OTLP_CERTIFICATE=/o.pem" in trust.profiles_trust(
        {"OTEL_EXPORTER_OTLP_CERTIFICATE": "/o.pem"}, through_relay=True
    )
