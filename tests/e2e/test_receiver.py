"""Tests for :mod:`pyrospan_launch.receiver` against real pyroscope-io and OTel SDK clients."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind
from recording_receiver import RecordingReceiver

from pyrospan_launch.receiver.profiles import decode_pprof, decode_push
from pyrospan_launch.receiver.records import ProfileSeries, ReceivedSpan, RequestInfo
from pyrospan_launch.receiver.server import PUSH_PATH, TRACES_PATH, Receiver
from pyrospan_launch.receiver.traces import decode_otlp_traces
from pyrospan_launch.wire import schemas
from pyrospan_launch.wire.body import decompress_body
from pyrospan_launch.wire.errors import DecodeError

SPAN_ID_TAG = "0123456789abcdef"
TRACE_ID_HEX = "5b8efff798038103d269b633813fc60c"
SPAN_ID_HEX = "eee19b7ec3c1b174"
PARENT_ID_HEX = "0102030405060708"


# --------------------------------------------------------------------------- helpers


def post(
    url: str, body: bytes, headers: dict[str, str] | None = None, method: str = "POST"
) -> tuple[int, bytes, str]:
    """POST with urllib; returns (status, body, content type) for 2xx and 4xx alike."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read(), err.headers.get("Content-Type", "")


def raw_request(port: int, lines: list[str], body: bytes = b"") -> int:
    """Send hand-written request headers (e.g. a lying Content-Length); return the status."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        conn_file = sock.makefile("rb")
        try:
            status_line = conn_file.readline().decode()
        finally:
            conn_file.close()
    return int(status_line.split()[1])


def otlp_json_body(**span_overrides: Any) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": TRACE_ID_HEX,
        "spanId": SPAN_ID_HEX,
        "parentSpanId": "",
        "name": "GET /json",
        "kind": 2,
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000250000000",
        "attributes": [
            {"key": "http.method", "value": {"stringValue": "GET"}},
            {"key": "http.status_code", "value": {"intValue": "200"}},
            {"key": "ok", "value": {"boolValue": True}},
            {"key": "ratio", "value": {"doubleValue": 0.5}},
            {
                "key": "tags",
                "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": 7}]}},
            },
        ],
        "status": {"code": 1},
    }
    span.update(span_overrides)
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]
                },
                "scopeSpans": [{"scope": {"name": "hand.made", "version": "1.0"}, "spans": [span]}],
            }
        ]
    }


def post_valid_trace(r: RecordingReceiver) -> None:
    """The receiver still answers a good request (used after every malformed one)."""
    before = len(r.spans)
    status, body, _ = post(
        r.traces_endpoint,
        json.dumps(otlp_json_body()).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 200
    assert body == b"{}"
    assert len(r.spans) == before + 1


@pytest.fixture
def receiver() -> Iterator[RecordingReceiver]:
    with RecordingReceiver() as r:
        yield r
    assert not r.errors, r.errors


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """200 MiB of zeros, gzip-compressed to a couple of hundred KiB."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1024 * 1024)
    parts = [comp.compress(zeros) for _ in range(200)]
    parts.append(comp.flush())
    return b"".join(parts)


# --------------------------------------------------------------------------- pyroscope-io

PYROSCOPE_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import pyroscope

    pyroscope.configure(
        application_name="recv-test",
        server_address=sys.argv[1],
        upload_interval=1,
        tags={"env": "t"},
        basic_auth_username="user",
        basic_auth_password="s3cr3t-value",
        tenant_id="tenant-a",
    )
    pyroscope.add_thread_tag("span_id", "0123456789abcdef")

    def burn_cpu_here(seconds):
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            n += 1
        return n

    burn_cpu_here(2.5)
    pyroscope.remove_thread_tag("span_id", "0123456789abcdef")
    pyroscope.shutdown()
    """
)


def test_real_pyroscope_io_push(receiver: RecordingReceiver) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONPATH", "OTEL_"))}
    proc = subprocess.run(
        [sys.executable, "-c", PYROSCOPE_SCRIPT, receiver.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr

    def tagged_burn(r: RecordingReceiver) -> bool:
        return any("burn_cpu_here" in s.stack for s in r.samples_with_label("span_id", SPAN_ID_TAG))

    assert receiver.wait_for(tagged_burn, timeout=5), receiver.requests

    tagged = receiver.samples_with_label("span_id", SPAN_ID_TAG)
    burn = [s for s in tagged if "burn_cpu_here" in s.stack]
    assert burn
    # Root first, leaf last: the module frame calls burn_cpu_here.
    assert burn[0].stack[0] == "<module>"
    assert burn[0].leaf == "burn_cpu_here"
    assert all(v > 0 for s in burn for v in s.values)

    profiles = receiver.profiles
    assert profiles
    series = profiles[0]
    assert series.labels["__name__"] == "process_cpu"
    assert series.labels["service_name"] == "recv-test"
    assert series.labels["env"] == "t"
    assert series.sample_types == [("cpu", "nanoseconds")]
    assert series.period > 0
    assert series.duration_nanos > 0
    assert series.time_nanos > 0

    # Header facts are kept, the secret is not.
    assert series.request is not None
    assert series.request.user_agent.startswith("pyroscope-rs/")
    assert series.request.has_authorization
    assert series.request.tenant_id == "tenant-a"
    assert series.request.content_encoding == "gzip"
    stored = repr(receiver.requests) + repr(receiver.profiles)
    assert "s3cr3t" not in stored
    assert base64.b64encode(b"user:s3cr3t-value").decode() not in stored


# --------------------------------------------------------------------------- OTel SDK


@pytest.mark.parametrize(
    "compression", [Compression.NoCompression, Compression.Gzip, Compression.Deflate]
)
def test_real_otel_sdk_spans(receiver: RecordingReceiver, compression: Compression) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "recv-otel"}))
    exporter = OTLPSpanExporter(
        endpoint=receiver.traces_endpoint, compression=compression, timeout=5
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test.receiver", "9.9")
    try:
        with tracer.start_as_current_span("root-op", kind=SpanKind.SERVER) as root:
            root.set_attribute("answer", 42)
            root.set_attribute("names", ["x", "y"])
            with tracer.start_as_current_span("child-op") as child:
                child.set_attribute("flag", True)
    finally:
        provider.shutdown()

    assert receiver.wait_for(lambda r: len(r.spans) >= 2, timeout=5)
    by_name = {s.name: s for s in receiver.spans}
    got_root, got_child = by_name["root-op"], by_name["child-op"]

    assert got_root.span_id == format(root.get_span_context().span_id, "016x")
    assert got_root.trace_id == format(root.get_span_context().trace_id, "032x")
    assert got_root.parent_span_id == ""
    assert got_child.span_id == format(child.get_span_context().span_id, "016x")
    assert got_child.parent_span_id == got_root.span_id
    assert got_child.trace_id == got_root.trace_id

    assert got_root.attributes == {"answer": 42, "names": ["x", "y"]}
    assert got_child.attributes == {"flag": True}
    assert got_root.kind == 2  # SPAN_KIND_SERVER
    assert got_root.end_ns >= got_root.start_ns > 0
    assert got_root.resource["service.name"] == "recv-otel"
    assert got_root.scope_name == "test.receiver"
    assert got_root.scope_version == "9.9"
    assert got_child.parent_is_remote is False
    assert receiver.root_spans() == [got_root]


def test_span_callback_and_failing_callback() -> None:
    seen: list[ReceivedSpan] = []

    def boom(_spans: list[ReceivedSpan]) -> None:
        raise RuntimeError("storage down")

    with RecordingReceiver(on_spans=[seen.extend, boom]) as r:
        post_valid_trace(r)
        assert [s.span_id for s in seen] == [SPAN_ID_HEX]
        assert len(r.errors) == 1
        assert "storage down" in r.errors[0]


# --------------------------------------------------------------------------- OTLP JSON


def test_otlp_json_traces(receiver: RecordingReceiver) -> None:
    doc = otlp_json_body(parentSpanId=PARENT_ID_HEX)
    status, body, ctype = post(
        receiver.traces_endpoint, json.dumps(doc).encode(), {"Content-Type": "application/json"}
    )
    assert (status, body, ctype) == (200, b"{}", "application/json")

    # Gzip-compressed JSON, and a root span.
    status, _, _ = post(
        receiver.traces_endpoint,
        gzip.compress(json.dumps(otlp_json_body()).encode()),
        {"Content-Type": "application/json; charset=utf-8", "Content-Encoding": "gzip"},
    )
    assert status == 200

    first, second = receiver.spans
    assert first.trace_id == TRACE_ID_HEX
    assert first.span_id == SPAN_ID_HEX
    assert first.parent_span_id == PARENT_ID_HEX
    assert first.name == "GET /json"
    assert first.kind == 2
    assert (first.start_ns, first.end_ns) == (1_700_000_000_000_000_000, 1_700_000_000_250_000_000)
    assert first.attributes == {
        "http.method": "GET",
        "http.status_code": 200,
        "ok": True,
        "ratio": 0.5,
        "tags": ["a", 7],
    }
    assert first.resource == {"service.name": "json-svc"}
    assert first.scope_name == "hand.made"
    assert first.status_code == 1
    assert receiver.root_spans() == [second]


def test_otlp_protobuf_response_and_metrics_logs(receiver: RecordingReceiver) -> None:
    req = trace_service_pb2.ExportTraceServiceRequest()
    status, body, ctype = post(
        receiver.traces_endpoint,
        req.SerializeToString(),
        {"Content-Type": "application/x-protobuf"},
    )
    assert (status, body, ctype) == (200, b"", "application/x-protobuf")
    for path in ("/v1/metrics", "/v1/logs"):
        status, body, _ = post(receiver.url + path, b"", {"Content-Type": "application/x-protobuf"})
        assert (status, body) == (200, b"")
    status, body, _ = post(receiver.url + "/v1/logs", b"{}", {"Content-Type": "application/json"})
    assert (status, body) == (200, b"{}")
    assert receiver.metrics_requests == 1
    assert receiver.logs_requests == 2


# --------------------------------------------------------------------------- malformed input


def _push_with_raw_profile(raw: bytes) -> bytes:
    req = schemas.PushRequest()
    series = req.series.add()
    series.labels.add(name="__name__", value="process_cpu")
    series.samples.add(raw_profile=raw, ID="x")
    return bytes(req.SerializeToString())


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("garbage-push", 400),
        ("garbage-gzipped-push", 400),
        ("bad-gzip-push", 400),
        ("truncated-gzip", 400),
        ("garbage-inner-profile", 400),
        ("bomb-push", 413),
        ("bomb-inner-profile", 413),
        ("bomb-traces", 413),
        ("garbage-otlp-protobuf", 400),
        ("bad-json", 400),
        ("bad-hex-id", 400),
        ("short-trace-id", 400),
        ("json-not-object", 400),
        ("unsupported-content-type", 415),
        ("unsupported-encoding", 415),
        ("wrong-path", 404),
        ("wrong-method", 405),
    ],
)
def test_malformed_requests(
    receiver: RecordingReceiver, gzip_bomb: bytes, case: str, expected: int
) -> None:
    push, traces = receiver.push_endpoint, receiver.traces_endpoint
    proto = {"Content-Type": "application/proto"}
    gz = {"Content-Type": "application/proto", "Content-Encoding": "gzip"}
    js = {"Content-Type": "application/json"}
    garbage = b"\xff\xff\xff\xff\x0f"
    requests: dict[str, tuple[str, bytes, dict[str, str]]] = {
        "garbage-push": (push, garbage, proto),
        "garbage-gzipped-push": (push, gzip.compress(garbage), gz),
        "bad-gzip-push": (push, b"not gzip at all", gz),
        "truncated-gzip": (push, gzip.compress(_push_with_raw_profile(b""))[:-12], gz),
        "garbage-inner-profile": (push, _push_with_raw_profile(gzip.compress(garbage)), proto),
        "bomb-push": (push, gzip_bomb, gz),
        "bomb-inner-profile": (push, _push_with_raw_profile(gzip_bomb), proto),
        "bomb-traces": (traces, gzip_bomb, {**js, "Content-Encoding": "gzip"}),
        "garbage-otlp-protobuf": (traces, garbage, {"Content-Type": "application/x-protobuf"}),
        "bad-json": (traces, b'{"resourceSpans": [', js),
        "bad-hex-id": (traces, json.dumps(otlp_json_body(spanId="zz" * 8)).encode(), js),
        "short-trace-id": (traces, json.dumps(otlp_json_body(traceId="abcd")).encode(), js),
        "json-not-object": (traces, b"[1, 2]", js),
        "unsupported-content-type": (traces, b"x", {"Content-Type": "text/plain"}),
        "unsupported-encoding": (traces, b"x", {**js, "Content-Encoding": "br"}),
        "wrong-path": (receiver.url + "/nope", b"", proto),
        "wrong-method": (traces, b"", {}),
    }
    url, body, headers = requests[case]
    method = "GET" if case == "wrong-method" else "POST"
    status, text, _ = post(url, body, headers, method=method)
    assert status == expected, text
    assert text.strip()
    assert not receiver.profiles
    post_valid_trace(receiver)


def test_length_limits(receiver: RecordingReceiver) -> None:
    port = receiver.port
    huge = [
        f"POST {PUSH_PATH} HTTP/1.1",
        "Host: x",
        "Content-Type: application/proto",
        f"Content-Length: {64 * 1024**3}",
    ]
    assert raw_request(port, huge) == 413
    missing = ["POST /v1/traces HTTP/1.1", "Host: x", "Content-Type: application/json"]
    assert raw_request(port, missing) == 411
    bogus = ["POST /v1/traces HTTP/1.1", "Host: x", "Content-Length: -5"]
    assert raw_request(port, bogus) == 400
    post_valid_trace(receiver)
    statuses = [info.status for info in receiver.requests]
    assert statuses == [413, 411, 400, 200]


def test_small_body_limit_and_expect_continue() -> None:
    with RecordingReceiver(max_body_bytes=10) as r:
        status, _, _ = post(r.traces_endpoint, b"x" * 11, {"Content-Type": "application/json"})
        assert status == 413
        conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=5)
        try:
            conn.putrequest("POST", "/v1/traces")
            conn.putheader("Content-Length", "11")
            conn.putheader("Expect", "100-continue")
            conn.endheaders()
            assert conn.getresponse().status == 413
        finally:
            conn.close()


def test_stop_is_bounded_with_stalled_client() -> None:
    r = RecordingReceiver(request_timeout=30).start()
    stalled = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    try:
        stalled.sendall(b"POST /v1/traces HTTP/1.1\r\nContent-Length: 100\r\n\r\npartial")
        time.sleep(0.1)
        started = time.monotonic()
        r.stop(timeout=1.0)
        assert time.monotonic() - started < 2.5
    finally:
        stalled.close()
    r.stop()  # idempotent
    with pytest.raises(RuntimeError):
        r.start()


def test_wait_for_times_out(receiver: RecordingReceiver) -> None:
    started = time.monotonic()
    assert not receiver.wait_for(lambda r: bool(r.spans), timeout=0.3)
    assert 0.25 < time.monotonic() - started < 2


# --------------------------------------------------------------------------- pure decoders


def _make_profile() -> Any:
    strings = ["", "cpu", "nanoseconds", "main", "inlined_leaf", "caller", "app.py",
               "span_id", "abc", "bytes"]  # fmt: skip
    p = schemas.Profile(string_table=strings, period=10, time_nanos=5, duration_nanos=7)
    p.sample_type.add(type=1, unit=2)
    p.period_type.type, p.period_type.unit = 1, 2
    p.function.add(id=1, name=3, filename=6)
    p.function.add(id=2, name=4, filename=6)
    p.function.add(id=3, name=5, filename=6)
    p.location.add(id=10, line=[schemas.Line(function_id=1, line=1)])
    # One location with an inlined frame: line[0] is the callee, the last is the caller.
    p.location.add(
        id=11,
        line=[schemas.Line(function_id=2, line=3), schemas.Line(function_id=3, line=2)],
    )
    p.location.add(id=12, address=0xBEEF)
    sample = p.sample.add(location_id=[12, 11, 10], value=[30])
    sample.label.add(key=7, str=8)
    sample.label.add(key=9, num=64, num_unit=9)
    return p


def test_decode_pprof_stack_order_and_labels() -> None:
    raw = bytes(_make_profile().SerializeToString())
    for data in (raw, gzip.compress(raw)):
        series = decode_pprof(data, labels={"service_name": "x"}, profile_id="id1")
        assert isinstance(series, ProfileSeries)
        (sample,) = series.samples
        assert sample.stack == ("main", "caller", "inlined_leaf", "0xbeef")
        assert [f.line for f in sample.frames] == [1, 2, 3, 0]
        assert sample.values == (30,)
        assert sample.labels == {"span_id": "abc"}
        assert sample.num_labels == {"bytes": 64}
        assert series.sample_types == [("cpu", "nanoseconds")]
        assert series.period_type == ("cpu", "nanoseconds")
        assert (series.period, series.time_nanos, series.duration_nanos) == (10, 5, 7)
        assert series.service_name == "x"
        assert series.profile_id == "id1"


def test_decode_push_roundtrip_and_bad_references() -> None:
    raw = bytes(_make_profile().SerializeToString())
    body = gzip.compress(_push_with_raw_profile(gzip.compress(raw)))
    (series,) = decode_push(body, "gzip")
    assert series.name == "process_cpu"
    assert series.samples[0].leaf == "0xbeef"

    broken = _make_profile()
    broken.sample[0].location_id.append(99)
    with pytest.raises(DecodeError, match="unknown location"):
        decode_pprof(bytes(broken.SerializeToString()))
    bad_index = _make_profile()
    bad_index.function[0].name = 1000
    with pytest.raises(DecodeError, match="out of range"):
        decode_pprof(bytes(bad_index.SerializeToString()))


def test_decompress_body_limits() -> None:
    data = b"hello " * 1000
    two_members = gzip.compress(data) + gzip.compress(data)
    assert decompress_body(two_members, "gzip") == data * 2
    assert decompress_body(zlib.compress(data), "deflate") == data
    assert decompress_body(data, None) == data
    with pytest.raises(DecodeError) as info:
        decompress_body(gzip.compress(data), "gzip", max_decompressed_bytes=100)
    assert info.value.http_status == 413
    with pytest.raises(DecodeError):
        decompress_body(gzip.compress(data)[:-5], "gzip")
    with pytest.raises(DecodeError) as info:
        decode_otlp_traces(b"", "application/xml", None)
    assert info.value.http_status == 415


# --------------------------------------------------------------------------- the plain sink


def test_requests_are_handed_on_before_the_answer() -> None:
    handed: list[RequestInfo] = []

    def slow_keeper(info: RequestInfo) -> None:
        # Slow on purpose: were requests handed on after the answer, the client would
        # hold its answer while the list is still empty.
        time.sleep(0.3)
        handed.append(info)

    def boom(_info: RequestInfo) -> None:
        raise RuntimeError("request log down")

    with Receiver(on_requests=[slow_keeper, boom]) as r:
        status, _, _ = post(r.traces_endpoint, b"not a protobuf", {"Content-Type": "x/y"})
        assert status == 415
        assert [(q.path, q.status) for q in handed] == [(TRACES_PATH, 415)]
        status, _, _ = post(
            r.traces_endpoint,
            json.dumps(otlp_json_body()).encode(),
            {"Content-Type": "application/json"},
        )
        assert status == 200  # a failing callback does not change the answer
        assert [(q.path, q.status) for q in handed][1:] == [(TRACES_PATH, 200)]
        assert r.count(TRACES_PATH) == 1
        assert len(r.errors) == 2 and all("request log down" in e for e in r.errors)


def test_the_package_receiver_keeps_nothing_it_decodes() -> None:
    with Receiver() as r:
        status, _, _ = post(
            r.traces_endpoint,
            json.dumps(otlp_json_body()).encode(),
            {"Content-Type": "application/json"},
        )
        assert status == 200 and r.count(TRACES_PATH) == 1
        kept = [
            name
            for name, value in vars(r).items()
            if isinstance(value, list) and value and not name.startswith("on_")
        ]
        assert kept == [], kept
