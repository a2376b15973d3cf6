"""The relay as a server: real sockets on 127.0.0.1, real pushes, real (and broken) backends."""

from __future__ import annotations

import gzip
import http.client
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fake_backends import Recorded, backend, recording_backend
from test_relay_rewrite import MAIN, SPAN_A, WORK, ProfileBuilder, marker

from pyrospan_launch.agent import native
from pyrospan_launch.agent import relay as relays
from pyrospan_launch.agent.relay.server import PUSH_PATH, TOKEN_HEADER, Relay
from pyrospan_launch.receiver.profiles import decode_push
from pyrospan_launch.wire import schemas


@pytest.fixture
def upstream() -> Iterator[tuple[str, Recorded]]:
    """A backend that records every request's target, headers and body, and answers 200."""
    with recording_backend("/prefix") as recorder:
        yield recorder


def push_body() -> bytes:
    builder = ProfileBuilder()
    builder.sample([MAIN, marker(SPAN_A, "GET /a"), WORK], 10)
    request: Any = schemas.PushRequest()
    series = request.series.add()
    series.labels.add(name="service_name", value="shop")
    series.samples.add(raw_profile=builder.bytes())
    return gzip.compress(request.SerializeToString())


def post(relay: Relay, body: bytes, headers: dict[str, str], target: str = PUSH_PATH) -> int:
    host, port = relay.address.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.fixture
def relay(upstream: tuple[str, Recorded]) -> Iterator[Relay]:
    live = Relay(upstream[0])
    live.start()
    live.warm_up()
    try:
        yield live
    finally:
        live.close()


def test_push_is_rewritten_and_forwarded_with_its_headers_path_and_query(
    relay: Relay, upstream: tuple[str, Recorded]
) -> None:
    _, recorded = upstream
    headers = {
        TOKEN_HEADER: relay.token,
        "Authorization": "Basic dXNlcjpzM2NyZXQ=",
        "X-Scope-OrgID": "tenant-7",
        "X-Custom": "kept",
        "Content-Type": "application/proto",
        "Content-Encoding": "gzip",
        "User-Agent": "pyroscope-rs/pyspy/1.4.0 reqwest",
    }
    assert post(relay, push_body(), headers, PUSH_PATH + "?x=1") == 200
    assert relay.drain(5)
    (target, raw_headers, body) = recorded.requests[0]
    got = {name.lower(): value for name, value in raw_headers.items()}  # case-insensitive
    assert target == "/prefix" + PUSH_PATH + "?x=1"
    for name in ("Authorization", "X-Scope-OrgID", "X-Custom", "Content-Type", "User-Agent"):
        assert got[name.lower()] == headers[name]
    assert got["content-encoding"] == "gzip"
    assert TOKEN_HEADER.lower() not in {name.lower() for name in got}
    (profile,) = decode_push(body, "gzip")
    assert profile.labels == {"service_name": "shop"}
    (sample,) = profile.samples
    assert sample.stack == ("<module>", "handler_work")
    assert sample.labels == {"span_id": SPAN_A, "span_name": "GET /a"}
    assert relay.stats.forwarded == 1


def test_a_relay_for_thread_tags_forwards_each_push_byte_for_byte(
    upstream: tuple[str, Recorded],
) -> None:
    # PYROSPAN_SPAN_LABELS=tags: no marker frame is ever made; linking loads the forwarding
    # side only (load_forwarding, not warm_up).
    builder = ProfileBuilder()
    builder.sample([MAIN, WORK], 10, span_id=SPAN_A, span_name="GET /a", customer="中" * 3)
    request: Any = schemas.PushRequest()
    series = request.series.add()
    series.labels.add(name="service_name", value="shop")
    series.samples.add(raw_profile=builder.bytes())
    body = gzip.compress(request.SerializeToString())
    live = Relay(upstream[0])
    live.start()
    live.load_forwarding()
    assert not live.markers_possible  # pushes pass unparsed
    try:
        headers = {TOKEN_HEADER: live.token, "Content-Encoding": "gzip"}
        assert post(live, body, headers) == 200
        assert live.drain(5)
    finally:
        live.close()
    (_, _, forwarded) = upstream[1].requests[0]
    assert forwarded == body
    (profile,) = decode_push(forwarded, "gzip")
    (sample,) = profile.samples
    assert sample.labels == {"span_id": SPAN_A, "span_name": "GET /a", "customer": "中中中"}


def test_a_push_is_served_when_no_thread_can_start(
    upstream: tuple[str, Recorded], monkeypatch: pytest.MonkeyPatch
) -> None:
    live = Relay(upstream[0])
    live.start()  # its accepting and forwarding threads run

    def no_thread(*args: object, **kwargs: object) -> None:
        # What Python 3.12+ says once the interpreter is finalizing (the exit flush).
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(native, "Thread", no_thread)
    try:
        headers = {TOKEN_HEADER: live.token, "Content-Encoding": "gzip"}
        assert post(live, push_body(), headers) == 200
        assert post(live, push_body(), headers) == 200  # and the next connection too
        assert live.drain(5)
    finally:
        live.close()
    assert len(upstream[1].requests) == 2


@pytest.mark.parametrize(
    ("headers", "target", "status"),
    [
        ({}, PUSH_PATH, 403),
        ({TOKEN_HEADER: "0" * 32}, PUSH_PATH, 403),
        ({TOKEN_HEADER: "TOKEN"}, "/ingest", 404),
    ],
)
def test_anything_but_its_own_processs_push_is_refused(
    relay: Relay, upstream: tuple[str, Recorded], headers: dict[str, str], target: str, status: int
) -> None:
    headers = {k: relay.token if v == "TOKEN" else v for k, v in headers.items()}
    assert post(relay, push_body(), headers, target) == status
    assert relay.drain(1)
    assert upstream[1].requests == []
    assert relay.stats.rejected == 1


def test_pushes_are_bounded_in_size(upstream: tuple[str, Recorded]) -> None:
    small = Relay(upstream[0], max_body=100)
    small.start()
    try:
        assert post(small, b"x" * 101, {TOKEN_HEADER: small.token}) == 413
        assert upstream[1].requests == []
    finally:
        small.close()


def test_a_client_that_never_sends_its_body_does_not_hold_the_relay(
    relay: Relay, upstream: tuple[str, Recorded]
) -> None:
    import socket

    host, port = relay.address.removeprefix("http://").split(":")
    stalled = socket.create_connection((host, int(port)))
    stalled.sendall(
        f"POST {PUSH_PATH} HTTP/1.1\r\nContent-Length: 1000\r\n"
        f"{TOKEN_HEADER}: {relay.token}\r\n\r\n".encode()
    )
    try:
        started = time.monotonic()
        assert (
            post(relay, push_body(), {TOKEN_HEADER: relay.token, "Content-Encoding": "gzip"}) == 200
        )
        assert time.monotonic() - started < 2
        assert relay.drain(5)
        assert len(upstream[1].requests) == 1
    finally:
        stalled.close()


def test_a_black_holed_backend_costs_no_memory_and_drain_keeps_its_deadline() -> None:
    with backend("blackhole") as url:
        stuck = Relay(url, forward_timeout=30)
        stuck.start()
        try:
            body = push_body()
            for _ in range(30):
                assert (
                    post(stuck, body, {TOKEN_HEADER: stuck.token, "Content-Encoding": "gzip"})
                    == 200
                )
            # One push in flight, the queue full, the rest dropped oldest first.
            assert len(stuck._queue) <= 8
            assert stuck.stats.dropped >= 30 - 8 - 1
            started = time.monotonic()
            assert stuck.drain(0.3) is False
            assert time.monotonic() - started < 0.6
        finally:
            stuck.close()


@pytest.mark.parametrize("kind", ["refused", "500", "garbage"])
def test_a_failing_backend_is_counted_not_raised(kind: str) -> None:
    with backend(kind) as url:
        failing = Relay(url, forward_timeout=2)
        failing.start()
        try:
            assert (
                post(
                    failing, push_body(), {TOKEN_HEADER: failing.token, "Content-Encoding": "gzip"}
                )
                == 200
            )
            assert failing.drain(5)
            assert failing.stats.failed == 1
            assert failing.stats.forwarded == 0
        finally:
            failing.close()


def test_the_relay_binds_to_loopback_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started = relays.start("http://127.0.0.1:9")
    assert started is not None
    try:
        assert started.address.startswith("http://127.0.0.1:")
    finally:
        started.close()
    monkeypatch.setenv(relays.HOST_VARIABLE, "0.0.0.0")
    assert relays.start("http://127.0.0.1:9") is None
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "pyrospan: span labels: the profile relay could not start (ValueError: 0.0.0.0 is not a "
        "loopback address); using thread tags, exact only for steps of 10 ms or more"
    ]
    # Span labels were thread tags anyway: what is lost is hearing about failed pushes.
    assert relays.start("http://127.0.0.1:9", frames=False) is None
    assert capsys.readouterr().err.splitlines() == [
        "pyrospan: profiles: the profile relay could not start (ValueError: 0.0.0.0 is not a "
        "loopback address); pyroscope-io pushes to the server itself, and a push it cannot "
        "deliver goes unreported"
    ]


def test_a_restarted_relay_has_a_new_token_and_none_of_the_old_pushes(
    upstream: tuple[str, Recorded],
) -> None:
    with backend("blackhole") as url:
        parent = Relay(url, forward_timeout=30)
        parent.start()
        old_token, old_address = parent.token, parent.address
        for _ in range(3):
            post(parent, push_body(), {TOKEN_HEADER: parent.token, "Content-Encoding": "gzip"})
        parent.upstream = upstream[0]
        parent.restart_in_child()
        try:
            assert parent.token != old_token
            assert parent.address != old_address
            assert not parent._queue
            assert post(parent, push_body(), {TOKEN_HEADER: old_token}) == 403
            assert (
                post(parent, push_body(), {TOKEN_HEADER: parent.token, "Content-Encoding": "gzip"})
                == 200
            )
            assert parent.drain(5)
            assert len(upstream[1].requests) == 1
        finally:
            parent.close()


def raw_exchange(relay: Relay, request: bytes) -> tuple[bytes, bool]:
    """The relay's answer to ``request`` sent on a fresh connection, and whether it then closed."""
    import socket

    host, port = relay.address.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = connection.recv(4096)
            if not chunk:
                break
            answer += chunk
        connection.settimeout(0.5)
        try:
            closed = connection.recv(1) == b""
        except TimeoutError:
            closed = False
    return answer, closed


@pytest.mark.parametrize(
    ("request_text", "status"),
    [
        ("garbage\r\n\r\n", 400),
        (f"GET {PUSH_PATH} HTTP/1.1\r\nHost: relay\r\n\r\n", 405),
        (f"BREW {PUSH_PATH} HTTP/1.1\r\nHost: relay\r\n\r\n", 405),
        ("POST /ingest HTTP/1.1\r\nHost: relay\r\n\r\n", 404),
        (f"POST {PUSH_PATH} HTTP/1.1\r\n{TOKEN_HEADER}: TOKEN\r\n\r\n", 411),
        (
            f"POST {PUSH_PATH} HTTP/1.1\r\n{TOKEN_HEADER}: TOKEN\r\n"
            "Transfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\nx",
            411,
        ),
    ],
)
def test_a_refused_request_is_answered_empty_and_its_connection_closed(
    relay: Relay, request_text: str, status: int
) -> None:
    answer, closed = raw_exchange(relay, request_text.replace("TOKEN", relay.token).encode())
    head = answer.decode("latin-1").split("\r\n")
    assert head[0].startswith(f"HTTP/1.1 {status} ")
    assert "Content-Length: 0" in head
    assert closed
    assert relay.stats.rejected == 1


def test_pyroscope_ios_connection_is_kept_alive_between_pushes(
    relay: Relay, upstream: tuple[str, Recorded]
) -> None:
    host, port = relay.address.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    headers = {TOKEN_HEADER: relay.token, "Content-Encoding": "gzip"}
    try:
        for _ in range(3):
            connection.request("POST", PUSH_PATH, body=push_body(), headers=headers)
            response = connection.getresponse()
            response.read()
            assert response.status == 200
            assert response.getheader("Connection") is None
        first_socket = connection.sock
        connection.request("POST", PUSH_PATH, body=push_body(), headers=headers)
        connection.getresponse().read()
        assert connection.sock is first_socket  # still the one connection
    finally:
        connection.close()
    assert relay.drain(5)
    assert len(upstream[1].requests) == 4


def test_a_push_keeps_the_server_of_the_token_it_was_sent_with(
    relay: Relay, upstream: tuple[str, Recorded]
) -> None:
    # The app's own configure() points the relay at its server; the replaced profiler's
    # last window, sent with the old token after that, still goes to the old server.
    old_token = relay.token
    gzipped = {"Content-Encoding": "gzip"}
    with recording_backend("/apps") as (apps_url, apps):
        relay.upstream = apps_url
        assert relay.token != old_token
        assert post(relay, push_body(), {TOKEN_HEADER: old_token, **gzipped}) == 200
        assert post(relay, push_body(), {TOKEN_HEADER: relay.token, **gzipped}) == 200
        assert relay.drain(5)
        assert [target for target, _, _ in apps.requests] == ["/apps" + PUSH_PATH]
    assert [target for target, _, _ in upstream[1].requests] == ["/prefix" + PUSH_PATH]
