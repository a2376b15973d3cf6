"""The relay's pprof rewrite: marker frames become span labels and leave every stack.

Profiles are built with the protobuf runtime as pyroscope-io lays them out (one location
per frame, one line per location, thread tags as string labels), rewritten, then decoded
by the repository's receiver, which is what a user's backend would see.
"""

from __future__ import annotations

import gzip
from typing import Any

import pytest

from pyrospan_launch.agent.relay.rewrite import rewrite_profile, rewrite_push, rewrite_raw_profile
from pyrospan_launch.agent.spans.span_markers import make_marker, marker_name, parse
from pyrospan_launch.receiver.profiles import decode_pprof, decode_push
from pyrospan_launch.wire import schemas
from pyrospan_launch.wire.errors import DecodeError

SPAN_A = "00000000000000aa"
SPAN_B = "00000000000000bb"
TRACE = "0123456789abcdef0123456789abcdef"
CAP = 1 << 24


class ProfileBuilder:
    """A pprof profile with stacks given as (function name, file) frames, root first."""

    def __init__(self) -> None:
        self.profile: Any = schemas.Profile()
        self.profile.string_table.append("")
        self._strings: dict[str, int] = {"": 0}
        self._functions: dict[tuple[str, str], int] = {}
        self.profile.sample_type.add(type=self.s("cpu"), unit=self.s("nanoseconds"))
        self.profile.period_type.type = self.s("cpu")
        self.profile.period_type.unit = self.s("nanoseconds")
        self.profile.period = 10_000_000

    def s(self, text: str) -> int:
        if text not in self._strings:
            self._strings[text] = len(self.profile.string_table)
            self.profile.string_table.append(text)
        return self._strings[text]

    def location(self, name: str, filename: str) -> int:
        key = (name, filename)
        if key not in self._functions:
            fid = len(self._functions) + 1
            self.profile.function.add(id=fid, name=self.s(name), filename=self.s(filename))
            self.profile.location.add(id=fid).line.add(function_id=fid, line=1)
            self._functions[key] = fid
        return self._functions[key]

    def sample(self, frames: list[tuple[str, str]], value: int, **labels: str) -> None:
        sample = self.profile.sample.add()
        sample.location_id.extend(self.location(*f) for f in reversed(frames))  # leaf first
        sample.value.append(value)
        for key, text in labels.items():
            sample.label.add(key=self.s(key), str=self.s(text))

    def bytes(self) -> bytes:
        data: bytes = self.profile.SerializeToString()
        return data


def marker(span_id: str, span_name: str, trace_id: str = "") -> tuple[str, str]:
    return (marker_name(span_id, trace_id), span_name)


MAIN = ("<module>", "app.py")
LOOP = ("run_forever", "asyncio/base_events.py")
WORK = ("handler_work", "app.py")


def decoded(raw: bytes) -> Any:
    return decode_pprof(raw)


def test_marker_frame_becomes_labels_and_leaves_the_stack() -> None:
    builder = ProfileBuilder()
    builder.sample([MAIN, LOOP, marker(SPAN_A, "GET /a"), WORK], 10, pid="7")
    builder.sample([MAIN, LOOP], 5, pid="7")
    out = decoded(rewrite_raw_profile(builder.bytes(), CAP))
    by_stack = {s.stack: s for s in out.samples}
    work = by_stack[("<module>", "run_forever", "handler_work")]
    assert work.label_pairs == (("pid", "7"), ("span_id", SPAN_A), ("span_name", "GET /a"))
    assert work.values == (10,)
    idle = by_stack[("<module>", "run_forever")]
    assert idle.label_pairs == (("pid", "7"),)


def test_the_innermost_marker_wins_over_outer_markers_and_thread_tags() -> None:
    builder = ProfileBuilder()
    frames = [MAIN, marker(SPAN_B, "outer"), LOOP, marker(SPAN_A, "inner"), WORK]
    builder.sample(frames, 10, span_id=SPAN_B, span_name="outer", pid="7")
    out = decoded(rewrite_raw_profile(builder.bytes(), CAP))
    (sample,) = out.samples
    assert [v for k, v in sample.label_pairs if k == "span_id"] == [SPAN_A]
    assert sample.labels["span_name"] == "inner"
    assert sample.stack == ("<module>", "run_forever", "handler_work")


def test_thread_tags_stay_on_samples_without_a_marker() -> None:
    builder = ProfileBuilder()
    builder.sample([MAIN, marker(SPAN_A, "a"), WORK], 10)
    builder.sample([MAIN, ("sync_view", "views.py")], 20, span_id=SPAN_B, span_name="GET /b")
    out = decoded(rewrite_raw_profile(builder.bytes(), CAP))
    tagged = next(s for s in out.samples if s.leaf == "sync_view")
    assert tagged.label_pairs == (("span_id", SPAN_B), ("span_name", "GET /b"))


def test_trace_id_and_missing_span_name() -> None:
    builder = ProfileBuilder()
    builder.sample([MAIN, marker(SPAN_A, "", TRACE), WORK], 10)
    (sample,) = decoded(rewrite_raw_profile(builder.bytes(), CAP)).samples
    assert sample.label_pairs == (("span_id", SPAN_A), ("trace_id", TRACE))


def test_samples_that_differ_only_by_marker_merge_and_nothing_of_a_marker_is_left() -> None:
    builder = ProfileBuilder()
    builder.sample([MAIN, marker(SPAN_A, "a"), WORK], 10)
    builder.sample([MAIN, marker(SPAN_A, "a"), marker(SPAN_A, "a"), WORK], 7)
    raw = rewrite_raw_profile(builder.bytes(), CAP)
    profile: Any = schemas.Profile()
    profile.ParseFromString(raw)
    assert [list(s.value) for s in profile.sample] == [[17]]
    assert not any(text.startswith("pyrospan.span:") for text in profile.string_table)
    assert len(profile.function) == len(profile.location) == 2
    assert profile.string_table[0] == ""
    # The rewritten profile is still self-consistent: every index resolves.
    out = decoded(raw)
    assert out.sample_types == [("cpu", "nanoseconds")]
    assert out.period_type == ("cpu", "nanoseconds")
    assert out.samples[0].frames[0].filename == "app.py"


def test_a_profile_without_markers_is_forwarded_byte_for_byte() -> None:
    builder = ProfileBuilder()
    builder.sample([MAIN, WORK], 10, span_id=SPAN_B)
    raw = builder.bytes()
    assert rewrite_raw_profile(raw, CAP) is raw
    zipped = gzip.compress(raw)
    assert rewrite_raw_profile(zipped, CAP) is zipped
    assert rewrite_profile(builder.profile) is False


def test_push_rewrite_keeps_series_labels_and_encoding() -> None:
    builder = ProfileBuilder()
    builder.sample([MAIN, marker(SPAN_A, "GET /a"), WORK], 10)
    request: Any = schemas.PushRequest()
    series = request.series.add()
    for name, value in (("__name__", "process_cpu"), ("service_name", "shop"), ("pid", "7")):
        series.labels.add(name=name, value=value)
    series.samples.add(raw_profile=gzip.compress(builder.bytes()), ID="id-1")
    body = gzip.compress(request.SerializeToString())
    out = rewrite_push(body, "gzip", CAP)
    assert out[:2] == b"\x1f\x8b"
    (profile,) = decode_push(out, "gzip")
    assert profile.labels == {"__name__": "process_cpu", "service_name": "shop", "pid": "7"}
    assert profile.profile_id == "id-1"
    assert profile.samples[0].labels == {"span_id": SPAN_A, "span_name": "GET /a"}
    assert all(not f.startswith("pyrospan.span:") for s in profile.samples for f in s.stack)


def test_garbage_is_refused_not_forwarded() -> None:
    with pytest.raises(DecodeError):
        rewrite_push(b"\x1f\x8bnot gzip at all", "gzip", CAP)
    with pytest.raises(DecodeError):
        rewrite_raw_profile(b"pyrospan.span:\xff\xff\xff", CAP)


def test_marker_functions_carry_the_labels_and_call_through() -> None:
    call = make_marker(SPAN_A, "GET /a", TRACE)
    assert call(lambda x, y=1: x + y, 2, y=3) == 5
    code = call.__code__
    assert parse(code.co_name, code.co_filename) == (SPAN_A, "GET /a", TRACE)
    assert parse("pyrospan.span:short", "x") is None
    assert parse("handler_work", "app.py") is None
    # Cut to a label value Pyroscope takes (2,048 bytes of UTF-8), far below what py-spy
    # refuses to read (4,096 characters).
    assert make_marker(SPAN_A, "x" * 5000).__code__.co_filename == "x" * 2048
    assert make_marker(SPAN_A, "中" * 800).__code__.co_filename == "中" * 682


def test_a_marker_name_too_long_for_a_label_is_cut() -> None:
    builder = ProfileBuilder()
    builder.sample([MAIN, marker(SPAN_A, "中" * 800), WORK], 10)
    profile = builder.profile
    assert rewrite_profile(profile)
    (sample,) = decoded(profile.SerializeToString()).samples
    assert sample.labels == {"span_id": SPAN_A, "span_name": "中" * 682}


def test_pid_is_added_to_samples_without_one_and_kept_where_present() -> None:
    # The Stack sampler labels no sample with its pid; the relay adds the process's own.
    builder = ProfileBuilder()
    builder.sample([MAIN, WORK], 10)
    builder.sample([MAIN, LOOP], 20, pid="7")
    builder.sample([MAIN, marker(SPAN_A, "GET /a"), WORK], 30)
    raw = builder.bytes()
    assert rewrite_raw_profile(raw, CAP) != raw  # the marker alone
    samples = decoded(rewrite_raw_profile(raw, CAP, pid="4242")).samples
    assert sorted((s.labels.get("pid"), s.labels.get("span_id", "")) for s in samples) == [
        ("4242", ""),
        ("4242", SPAN_A),
        ("7", ""),
    ]


def test_a_profile_with_nothing_to_change_stays_the_same_bytes() -> None:
    builder = ProfileBuilder()
    builder.sample([MAIN, WORK], 10, pid="9")
    raw = builder.bytes()
    assert rewrite_raw_profile(raw, CAP, pid="9") is raw
    assert rewrite_raw_profile(raw, CAP) is raw


def test_strings_a_marker_shares_with_labels_stay_and_its_own_are_blanked() -> None:
    # A marker's file name is its span name: the span_name label the rewrite adds, and a
    # thread tag on an unmarked sample, refer to the same string, which must stay.
    builder = ProfileBuilder()
    builder.sample([MAIN, marker(SPAN_A, "GET /a", TRACE), WORK], 10)
    builder.sample([MAIN, ("sync_view", "views.py")], 20, span_id=SPAN_B, span_name="GET /a")
    profile = builder.profile
    assert rewrite_profile(profile)
    table = list(profile.string_table)
    assert not any(text.startswith("pyrospan.span:") for text in table)
    assert table.count("GET /a") == 1
    assert len(profile.function) == len(profile.location) == 3  # the marker's are gone
    samples = decoded(profile.SerializeToString()).samples
    by_leaf = {s.leaf: s for s in samples}
    assert by_leaf["handler_work"].label_pairs == (
        ("span_id", SPAN_A),
        ("span_name", "GET /a"),
        ("trace_id", TRACE),
    )
    assert by_leaf["sync_view"].label_pairs == (("span_id", SPAN_B), ("span_name", "GET /a"))


def test_many_spans_in_one_profile_each_keep_their_own_labels_and_stacks() -> None:
    # As a busy process's push has them: one marker per span, hundreds of spans, deep
    # stacks, some samples of a span differing only by which of its markers they ran in.
    builder = ProfileBuilder()
    layers = [(f"layer_{i}", "layers.py") for i in range(60)]
    expected: dict[tuple[str, str], int] = {}
    for n in range(300):
        span_id = f"{n:016x}"
        name = f"GET /{n % 7}"
        frames = [MAIN, LOOP, marker(span_id, name), *layers, WORK]
        builder.sample(frames, 10 + n)
        if n % 3 == 0:  # the same stack under a second marker of the span: merged
            builder.sample(
                [MAIN, LOOP, marker(span_id, name), marker(span_id, name), *layers, WORK], 1
            )
        expected[(span_id, name)] = 10 + n + (1 if n % 3 == 0 else 0)
    builder.sample([MAIN, LOOP], 5)
    profile = builder.profile
    assert rewrite_profile(profile)
    samples = decoded(profile.SerializeToString()).samples
    got = {(s.labels["span_id"], s.labels["span_name"]): s.values[0] for s in samples if s.labels}
    assert got == expected
    stack = ("<module>", "run_forever", *(f[0] for f in layers), "handler_work")
    assert all(s.stack == stack for s in samples if s.labels)
    assert len(profile.sample) == 301
