"""Unit tests of local mode's parts: store, aggregation, HTML escaping, pprof, env, summary.

These use hand-made spans and profiles; tests/test_local_e2e.py and the browser tests run
the same parts with real programs, the real OpenTelemetry SDK and the real profiler.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sqlite3
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pyrospan_launch.local import environment, html, pprof, summary, supervisor, views
from pyrospan_launch.local.aggregate import flame_graph, percentile, top_functions
from pyrospan_launch.local.store import MAX_STACK_DEPTH, MAX_TEXT, Scope, Store, StoreError
from pyrospan_launch.receiver.profiles import decode_pprof
from pyrospan_launch.receiver.records import Frame, ProfileSample, ProfileSeries, ReceivedSpan
from pyrospan_launch.receiver.server import TRACES_PATH, Receiver

HOSTILE = ["</script><script>alert(1)</script>", "<!--", "a\u2028b\u2029c", "&amp;", "{{JS}}"]


def span(span_id: str, name: str, start_ms: int, end_ms: int, parent: str = "") -> ReceivedSpan:
    return ReceivedSpan(
        trace_id="ab" * 16,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind=2,
        start_ns=start_ms * 1_000_000,
        end_ns=end_ms * 1_000_000,
        attributes={},
        resource={"service.name": "svc"},
        scope_name="test",
    )


def cpu_profile(*samples: tuple[tuple[str, ...], int, str]) -> ProfileSeries:
    """A CPU profile of (stack root first, CPU ns, span id) samples, 10 ms period."""
    return ProfileSeries(
        labels={"__name__": "process_cpu", "service_name": "svc"},
        samples=[
            ProfileSample(
                stack=stack,
                values=(value,),
                labels={"span_id": span_id, "span_name": "x"} if span_id else {},
                frames=tuple(Frame(name, "app.py", 10 + i) for i, name in enumerate(stack)),
            )
            for stack, value, span_id in samples
        ],
        sample_types=[("cpu", "nanoseconds")],
        period_type=("cpu", "nanoseconds"),
        period=10_000_000,
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data.sqlite", fresh=True)


# --------------------------------------------------------------------------- store


def test_samples_arriving_before_their_span_are_attributed_once_it_arrives(store: Store) -> None:
    store.add_profiles([cpu_profile((("main", "work"), 30_000_000, "1" * 16))])
    assert store.queries.cpu_by_name() == {}
    store.add_spans([span("1" * 16, "GET /a", 0, 50)])
    assert store.queries.cpu_by_name() == {"GET /a": (30_000_000, 3)}
    assert store.queries.self_time(Scope("name", "GET /a")) == [("work", "app.py", 30_000_000)]


def test_only_local_root_spans_are_listed(store: Store) -> None:
    store.add_spans([span("1" * 16, "root", 0, 50), span("2" * 16, "child", 10, 20, "1" * 16)])
    assert [s.name for s in store.queries.root_spans()] == ["root"]


def test_non_cpu_profiles_are_not_stored(store: Store) -> None:
    memory = ProfileSeries(
        labels={"__name__": "memory"},
        samples=[ProfileSample(stack=("a",), values=(1,))],
        sample_types=[("alloc_space", "bytes")],
    )
    store.add_profiles([memory])
    assert store.queries.cpu_total() == (0, 0) and store.ignored_profiles == 1


def test_data_survives_reopening_and_fresh_starts_empty(tmp_path: Path) -> None:
    first = Store(tmp_path / "d.sqlite", fresh=True)
    first.add_spans([span("1" * 16, "kept", 0, 5)])
    first.add_profiles([cpu_profile((("main",), 10_000_000, "1" * 16))])
    first.close()
    again = Store(tmp_path / "d.sqlite")
    assert [s.name for s in again.queries.root_spans()] == ["kept"]
    assert again.queries.cpu_by_span() == {"1" * 16: (10_000_000, 1)}
    again.add_profiles([cpu_profile((("main",), 10_000_000, "1" * 16))])  # same stack again
    assert again.queries.cpu_by_span() == {"1" * 16: (20_000_000, 2)}
    again.close()
    assert Store(tmp_path / "d.sqlite", fresh=True).queries.root_spans() == []


def test_a_file_that_is_not_a_store_is_one_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="is not a pyrospan-run data file"):
        Store(junk)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema', '99')")
    with pytest.raises(StoreError, match="another version"):
        Store(other)


def test_long_names_and_deep_stacks_are_cut(store: Store) -> None:
    deep = tuple(f"f{i}" for i in range(5000))
    store.add_spans([span("1" * 16, "n" * 50_000, 0, 5)])
    store.add_profiles([cpu_profile((deep, 10_000_000, "1" * 16))])
    (record,) = store.queries.root_spans()
    assert len(record.name) == MAX_TEXT
    ((frames, value),) = store.queries.stack_values(Scope("process"))
    assert len(frames) == MAX_STACK_DEPTH and value == 10_000_000
    assert frames[0][0] == "f0" and frames[-1][0] == "f4999"
    assert "frames elided" in frames[MAX_STACK_DEPTH // 2][0]


def test_concurrent_writers_lose_nothing(store: Store) -> None:
    def write(worker: int) -> None:
        for i in range(20):
            span_id = f"{worker:08x}{i:08x}"
            store.add_spans([span(span_id, f"w{worker}", i, i + 1)])
            store.add_profiles([cpu_profile((("main", f"w{worker}"), 10_000_000, span_id))])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.queries.root_span_count() == 120
    assert store.queries.cpu_total() == (120 * 10_000_000, 120)


# --------------------------------------------------------------------------- aggregation


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([40, 10, 30, 20], 0.50) == 25
    assert percentile([10, 20, 30, 40], 0.95) == pytest.approx(38.5)
    assert percentile([7], 0.95) == 7
    assert percentile([], 0.5) == 0


def test_flame_graph_merges_stacks_in_pre_order() -> None:
    def frames(*names: str) -> tuple[tuple[str, str, int], ...]:
        return tuple((n, "f.py", i) for i, n in enumerate(names))

    graph = flame_graph([(frames("a", "c"), 1), (frames("a", "b"), 3), (frames("a"), 2)])
    assert graph.nodes == [
        ("all", "", 0, 6, 0),
        ("a", "f.py", 1, 6, 2),
        ("b", "f.py", 2, 3, 3),
        ("c", "f.py", 2, 1, 1),
    ]
    pruned = flame_graph([(frames("a", "c"), 1), (frames("a", "b"), 99)], min_fraction=0.05)
    assert [n[0] for n in pruned.nodes] == ["all", "a", "b"]
    assert pruned.nodes[1][3] == 100  # the parent keeps the left-out child's time


def test_a_very_deep_flame_graph_still_serialises() -> None:
    deep = tuple((f"f{i}", "", 0) for i in range(20_000))
    document = flame_graph([(deep, 5)]).as_json()
    decoded = json.loads(json.dumps(document))
    assert len(decoded["nodes"]) == 20_001 and decoded["nodes"][-1][2] == 20_000


def test_top_functions_by_self_time() -> None:
    rows = [("a", "x.py", 5), ("b", "x.py", 9), ("a", "x.py", 6), ("", "", 1)]
    assert [(f.name, f.self_ns) for f in top_functions(rows, 2)] == [("a", 11), ("b", 9)]


def test_groups_have_count_percentiles_cpu_and_top_functions(store: Store) -> None:
    store.add_spans([span(f"{i:016x}", "GET /a", 0, 10 * (i + 1)) for i in range(10)])
    store.add_profiles([cpu_profile((("main", "hot"), 40_000_000, f"{1:016x}"))])
    (group,) = views.group_stats(store)
    assert (group.name, group.count, group.cpu_ns, group.samples) == ("GET /a", 10, 40e6, 4)
    assert group.p50_ns == pytest.approx(55e6) and group.p95_ns == pytest.approx(95.5e6)
    assert [f.name for f in group.top] == ["hot"]


# --------------------------------------------------------------------------- html


@pytest.mark.parametrize("name", HOSTILE)
def test_json_for_script_cannot_end_the_script_block(name: str) -> None:
    text = html.json_for_script({"name": name, name: [name]})
    assert "<" not in text and ">" not in text and "&" not in text
    assert "\u2028" not in text and "\u2029" not in text
    assert json.loads(text) == {"name": name, name: [name]}


def test_page_policy_allows_exactly_its_own_script_and_style() -> None:
    page = html.render({"mode": "report", "x": HOSTILE}, title="<b>t</b>", live=False)
    script = re.search(r"<script>(.*?)</script>", page, re.S)
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    assert script and style

    def digest(text: str) -> str:
        return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert policy
    assert f"script-src &#x27;sha256-{digest(script.group(1))}&#x27;" in policy.group(1)
    assert f"style-src &#x27;sha256-{digest(style.group(1))}&#x27;" in policy.group(1)
    assert "connect-src &#x27;none&#x27;" in policy.group(1)
    assert "<title>&lt;b&gt;t&lt;/b&gt;</title>" in page
    assert page.count("<script") == 2  # the data block and the page's own script


# --------------------------------------------------------------------------- pprof


def test_pprof_round_trips_with_labels_and_lines() -> None:
    stacks = [
        ((("main", "app.py", 3), ("work", "app.py", 9)), 30),
        ((("main", "app.py", 3), ("work", "app.py", 11)), 20),
    ]
    data = pprof.build_profile(
        stacks, period=10, time_ns=5, duration_ns=7, labels={"span_id": "ab" * 8}
    )
    assert data[:2] == b"\x1f\x8b"
    decoded = decode_pprof(data)
    assert decoded.sample_types == [("cpu", "nanoseconds")] and decoded.period == 10
    assert (decoded.time_nanos, decoded.duration_nanos) == (5, 7)
    assert [(s.stack, s.values, s.labels) for s in decoded.samples] == [
        (("main", "work"), (30,), {"span_id": "ab" * 8}),
        (("main", "work"), (20,), {"span_id": "ab" * 8}),
    ]
    assert [f.line for f in decoded.samples[1].frames] == [3, 11]


# --------------------------------------------------------------------------- env, status


def test_child_environment_points_both_signals_at_the_receiver() -> None:
    env = environment.pointed_at(
        {
            "PYROSCOPE_SERVER_ADDRESS": "http://pyroscope:4040",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4318/v1/traces",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_TRACES_EXPORTER": "console",
            "PYROSCOPE_UPLOAD_INTERVAL": "5",
            "PYROSPAN_LOCAL": "true",
            "KEEP": "me",
        },
        "http://127.0.0.1:9",
    )
    assert env == {
        "PYROSCOPE_SERVER_ADDRESS": "http://127.0.0.1:9",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_EXPORTER": "otlp",
        "PYROSCOPE_UPLOAD_INTERVAL": "5",
        "OTEL_BSP_SCHEDULE_DELAY": "1000",
        "KEEP": "me",
    }


def test_exit_status_of_a_signalled_child_is_128_plus_the_signal() -> None:
    assert supervisor.exit_status(-15) == 143
    assert supervisor.exit_status(3) == 3


def test_terminal_summary_escapes_control_characters() -> None:
    assert summary.printable("\x1b[31mred\nline") == "\\x1b[31mred\\nline"
    assert summary.printable("x" * 100, 10) == "x" * 9 + "…"
    assert summary.duration(1_450_000_000) == "1.45 s"
    assert summary.duration(265_000_000) == "265 ms"


# --------------------------------------------------------------------------- receiver hook


def test_receiver_serves_pages_and_hands_spans_on() -> None:
    received: list[ReceivedSpan] = []

    def pages(target: str, host: str) -> tuple[int, bytes, str]:
        return 200, f"{target} {host}".encode(), "text/plain"

    body = {
        "resourceSpans": [
            {"scopeSpans": [{"spans": [{"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "s"}]}]}
        ]
    }
    with Receiver(pages=pages, on_spans=[received.extend]) as receiver:
        request = urllib.request.Request(
            receiver.traces_endpoint,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        assert [s.name for s in received] == ["s"]
        assert receiver.count(TRACES_PATH) == 1
        with urllib.request.urlopen(receiver.url + "/page?x=1", timeout=5) as response:
            assert response.read() == f"/page?x=1 127.0.0.1:{receiver.port}".encode()
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Cache-Control"] == "no-store"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(receiver.traces_endpoint, timeout=5)  # GET of a POST route
        assert refused.value.code == 405
        refused.value.close()
