"""``pyrospan-run --serve``: several processes report to one place; hostile input is dropped.

The receiver runs as users run it (a subprocess of the real launcher) and real programs
send to it under pyrospan-run.  Malformed, oversized and hostile payloads get a 4xx and
change nothing that was stored; a restart and ``--render`` still show the earlier spans.
"""

from __future__ import annotations

import gzip
import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import PROGRAMS, PYROSPAN_RUN, clean_env, free_port, run, wait_for_http

from pyrospan_launch.local import pprof
from pyrospan_launch.receiver.server import PUSH_PATH, TRACES_PATH
from pyrospan_launch.wire import schemas

pytestmark = pytest.mark.e2e

HOSTILE_NAME = "<script>alert(1)</script>" + "x" * 5000


class Serve:
    """A running ``pyrospan-run --serve`` and what it printed once stopped."""

    def __init__(self, report_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [PYROSPAN_RUN, "--serve", "--port", str(self.port), "--report-dir", str(report_dir)],
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_http(self.url + "/api/summary", self.process)

    def summary(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/api/summary", timeout=5) as response:
            document: dict[str, Any] = json.load(response)
        return document

    def stop(self) -> tuple[int, str]:
        """Ctrl-C, as a user stops it: (exit status, stderr)."""
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=30)
        return self.process.returncode, err


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    started = Serve(tmp_path / "report")
    yield started
    if started.process.poll() is None:
        started.process.kill()
        started.process.communicate()


def send(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        with err:
            return int(err.code)


def raw(port: int, head: str, body: bytes = b"") -> int:
    """A hand-written request (lying lengths, odd hosts); returns the status."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n\r\n" + body)
        with sock.makefile("rb") as answer:
            return int(answer.readline().split()[1])


def push_body(samples: list[tuple[list[str], dict[str, str]]]) -> bytes:
    """A gzip push of one CPU profile, written with local mode's own pprof writer."""
    stacks = [([(name, "evil.py", 1) for name in stack], 10_000_000) for stack, _ in samples]
    raw_profile = pprof.build_profile(stacks, period=10_000_000, labels=samples[0][1])
    request = schemas.PushRequest()
    series = request.series.add()
    series.labels.add(name="__name__", value="process_cpu")
    series.labels.add(name="service_name", value="evil")
    series.samples.add(raw_profile=raw_profile, ID="x")
    return gzip.compress(request.SerializeToString())


def otlp_json(name: str, span_id: str, trace_id: str = "ab" * 16) -> bytes:
    span = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000100000000",
    }
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "evil"}}]}
    return json.dumps(
        {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": [span]}]}]}
    ).encode()


def gzip_bomb() -> bytes:
    """100 MiB of zeros in about 100 KiB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1024 * 1024)
    return b"".join([*(compressor.compress(zeros) for _ in range(100)), compressor.flush()])


def run_hot_span(serve: Serve, service: str) -> subprocess.Popen[str]:
    env = clean_env(
        PYROSCOPE_SERVER_ADDRESS=serve.url,
        OTEL_EXPORTER_OTLP_ENDPOINT=serve.url,
        PYROSCOPE_UPLOAD_INTERVAL="1",
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_SERVICE_NAME=service,
    )
    return subprocess.Popen(
        [PYROSPAN_RUN, sys.executable, str(PROGRAMS / "hot_span.py"), "0.4"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stored_spans(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {span["id"]: span for span in document["spans"]}


def test_several_processes_report_to_one_place_and_hostile_input_changes_nothing(
    serve: Serve, tmp_path: Path
) -> None:
    programs = [run_hot_span(serve, name) for name in ("cart", "billing")]
    outputs = [program.communicate(timeout=60) for program in programs]
    assert all(program.returncode == 0 for program in programs), outputs
    span_ids = {out.split()[1] for out, _ in outputs}
    document = serve.summary()
    assert set(stored_spans(document)) == span_ids
    assert all(stored_spans(document)[s]["cpu_ns"] > 0 for s in span_ids)
    assert document["services"] == ["billing", "cart"]

    push, traces = serve.url + PUSH_PATH, serve.url + TRACES_PATH
    proto = {"Content-Type": "application/proto", "Content-Encoding": "gzip"}
    rejected = {
        "garbage push": send(push, b"\x08\xff\xff garbage", {"Content-Type": "application/proto"}),
        "gzip bomb": send(push, gzip_bomb(), proto),
        "truncated gzip": send(push, push_body([(["f"], {})])[:40], proto),
        "garbage traces": send(
            traces, b"\x0a\xff\xff\xff", {"Content-Type": "application/x-protobuf"}
        ),
        "non-hex span id": send(
            traces, otlp_json("x", "zz" * 8), {"Content-Type": "application/json"}
        ),
        "deep JSON": send(traces, b"[" * 200_000, {"Content-Type": "application/json"}),
        "text body": send(traces, b"hello", {"Content-Type": "text/plain"}),
        "huge length": raw(
            serve.port, f"POST {TRACES_PATH} HTTP/1.1\nHost: x\nContent-Length: 999999999999"
        ),
        "chunked": raw(
            serve.port,
            f"POST {PUSH_PATH} HTTP/1.1\nHost: x\nTransfer-Encoding: chunked",
            b"5\r\nhello\r\n0\r\n\r\n",
        ),
        "foreign host": raw(serve.port, "GET /api/summary HTTP/1.1\nHost: evil.example:80"),
        "bad view": raw(serve.port, "GET /api/flame?view=%3Cx%3E HTTP/1.1\nHost: 127.0.0.1"),
        "unknown span": raw(
            serve.port, "GET /api/flame?view=span:0000000000000000 HTTP/1.1\nHost: localhost"
        ),
        "PUT of the page": raw(serve.port, "PUT / HTTP/1.1\nHost: 127.0.0.1"),
    }
    assert rejected == {
        "garbage push": 400,
        "gzip bomb": 413,
        "truncated gzip": 400,
        "garbage traces": 400,
        "non-hex span id": 400,
        "deep JSON": 400,
        "text body": 415,
        "huge length": 413,
        "chunked": 411,
        "foreign host": 403,
        "bad view": 400,
        "unknown span": 404,
        "PUT of the page": 404,
    }

    # Well-formed but hostile: a script as a span name, a 5000-frame stack.
    assert (
        send(traces, otlp_json(HOSTILE_NAME, "cd" * 8), {"Content-Type": "application/json"}) == 200
    )
    deep = [f"frame{i}" for i in range(5000)]
    assert send(push, push_body([(deep, {"span_id": "cd" * 8})]), proto) == 200
    document = serve.summary()
    assert set(stored_spans(document)) == {*span_ids, "cd" * 8}
    assert stored_spans(document)["cd" * 8]["name"].startswith("<script>alert(1)</script>xx")
    assert len(stored_spans(document)["cd" * 8]["name"]) == 1000
    with urllib.request.urlopen(serve.url + "/api/flame?view=process", timeout=10) as response:
        flame = json.load(response)
    assert max(node[2] for node in flame["nodes"]) == 1000  # cut to 1000 frames under "all"

    status, err = serve.stop()
    assert status == 0, err
    assert "checkout" in err and "2 spans" in err
    assert (tmp_path / "report" / "report.html").is_file()

    # The data survives a restart: the next --serve and --render still see the spans.
    again = Serve(tmp_path / "report")
    try:
        assert set(stored_spans(again.summary())) == {*span_ids, "cd" * 8}
    finally:
        status, err = again.stop()
    assert status == 0, err
    rendered = run([PYROSPAN_RUN, "--render", str(tmp_path / "report")], clean_env())
    assert rendered.returncode == 0, rendered.stderr
    assert "checkout" in rendered.stderr and "<script>alert(1)</script>" in rendered.stderr


def test_receiver_listens_on_loopback_only(serve: Serve) -> None:
    listening = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port = local.split(":")
        if state == "0A" and int(port, 16) == serve.port:  # 0A: LISTEN
            listening.add(address)
    assert listening == {"0100007F"}  # 127.0.0.1, little-endian hex
    assert "http://127.0.0.1:" in serve.stop()[1]


def test_busy_port_is_one_clear_line(serve: Serve, tmp_path: Path) -> None:
    result = run(
        [PYROSPAN_RUN, "--serve", "--port", str(serve.port), "--report-dir", str(tmp_path / "b")],
        clean_env(),
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"pyrospan-run: cannot listen on 127.0.0.1:{serve.port}: Address already in use; "
        "choose another --port\n"
    )
