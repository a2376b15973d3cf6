"""Labels within Pyroscope's limits: the one cut, the user's labels at start, the app's tags.

The cut is checked against its definition for any text Hypothesis finds (lone surrogates
included); the settings, the app's thread tags, the relay's series labels and local mode's
pprof files are checked with the values a user would meet.
"""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from tag_recorder import TagRecorder

from pyrospan_launch.agent.app_tags import AppTags
from pyrospan_launch.agent.relay.rewrite import fit_series_labels
from pyrospan_launch.agent.spans.span_markers import make_marker
from pyrospan_launch.local.pprof import build_profile
from pyrospan_launch.settings import config, label_limits
from pyrospan_launch.settings.label_limits import (
    MAX_NAME_BYTES,
    MAX_VALUE_BYTES,
    fit_name,
    fit_value,
    user_label_room,
)
from pyrospan_launch.settings.report import report_bad_settings
from pyrospan_launch.wire import schemas

# Every code point, surrogates (category Cs) included: a str may hold them.
ANY_TEXT = st.text(st.characters(blacklist_categories=()), max_size=3000)


def replaced(text: str) -> str:
    return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)


@settings(deadline=None)  # pure and fast; a loaded CI machine must not make it flaky
@given(ANY_TEXT, st.integers(min_value=0, max_value=3000))
@example("中" * 800, MAX_VALUE_BYTES)
@example("😀" * 600, MAX_VALUE_BYTES)
@example("a\udcff" * 10, 5)
def test_the_cut_is_the_longest_valid_prefix_that_fits(text: str, limit: int) -> None:
    cut = fit_value(text, limit)
    data = cut.encode("utf-8")  # raises for anything that is not valid UTF-8
    assert len(data) <= limit
    whole = replaced(text)
    assert whole.startswith(cut)
    if cut != whole:  # cut at a character boundary, as late as the limit allows
        assert len(whole[: len(cut) + 1].encode()) > limit


def test_a_value_that_fits_comes_back_unchanged() -> None:
    name = "GET /cart/{id}"
    assert fit_value(name) is name
    assert fit_value("中" * 682) == "中" * 682


def test_long_span_names_cut_to_2048_bytes() -> None:
    assert fit_value("a" * 3000) == "a" * 2048
    assert fit_value("中" * 800) == "中" * 682  # 2,046 bytes: a 683rd would make 2,049
    assert fit_value("😀" * 600) == "😀" * 512


def test_a_name_too_long_is_refused_not_cut() -> None:
    assert fit_name("n" * MAX_NAME_BYTES) == "n" * MAX_NAME_BYTES
    assert fit_name("n" * (MAX_NAME_BYTES + 1)) is None
    assert fit_name("bad\udcffname") == "bad\ufffdname"
    assert fit_name("") is None  # Pyroscope refuses an empty name too


def test_room_for_labels_besides_the_profilers_and_the_spans() -> None:
    # 30 per series: 7 the profiler's (__name__, service_name, 4 otel/process, pid).
    assert user_label_room(1) == 22
    assert user_label_room(2) == 21
    assert user_label_room(0) == 23


def test_a_marker_frame_carries_the_name_cut() -> None:
    marker = make_marker("00000000000000aa", "中" * 800)
    assert marker.__code__.co_filename == "中" * 682


# ---------------------------------------------------------------------- the user's labels


def test_user_labels_cut_and_each_change_said() -> None:
    resolved = config.resolve(
        {
            "PYROSCOPE_LABELS": "team=" + "t" * 3000 + ",region=eu",
            "OTEL_RESOURCE_ATTRIBUTES": "service.version=" + "中" * 800,
        }
    )
    assert resolved.profiler is not None
    assert resolved.profiler.tags == {
        "service_version": "中" * 682,
        "team": "t" * 2048,
        "region": "eu",
    }
    assert resolved.notices == (
        "OTEL_RESOURCE_ATTRIBUTES: the value of service_version is 2400 bytes, more than the "
        "2048 bytes of UTF-8 Pyroscope takes; profiles carry it cut to 2046 bytes",
        "PYROSCOPE_LABELS: the value of team is 3000 bytes, more than the 2048 bytes of UTF-8 "
        "Pyroscope takes; profiles carry it cut to 2048 bytes",
    )
    assert resolved.errors == ()  # nothing is off: profiling runs with the labels cut
    assert resolved.profiling


def test_undecodable_bytes_in_a_label_are_replaced_and_said() -> None:
    resolved = config.resolve({"PYROSCOPE_LABELS": "host=web\udcff1"})
    assert resolved.profiler is not None
    assert resolved.profiler.tags == {"host": "web\ufffd1"}
    assert resolved.notices == (
        "PYROSCOPE_LABELS: the value of host is not valid UTF-8; profiles carry it with "
        "U+FFFD for its undecodable bytes",
    )


def test_a_label_name_too_long_is_left_out() -> None:
    name = "n" * 1500
    resolved = config.resolve({"PYROSCOPE_LABELS": f"{name}=v,team=a"})
    assert resolved.profiler is not None
    assert resolved.profiler.tags == {"team": "a"}
    assert resolved.notices == (
        f"PYROSCOPE_LABELS: the label name '{'n' * 40}...' is 1500 bytes, more than the 1024 "
        "Pyroscope takes; profiles are sent without it",
    )


def test_labels_past_a_series_room_are_left_out() -> None:
    labels = ",".join(f"l{i:02d}=v" for i in range(24))
    resolved = config.resolve({"PYROSCOPE_LABELS": labels, "PYROSPAN_TRACE_ID_LABEL": "true"})
    assert resolved.profiler is not None
    assert list(resolved.profiler.tags) == [f"l{i:02d}" for i in range(21)]
    assert resolved.notices == (
        "PYROSCOPE_LABELS: 24 profile labels in all, but a Pyroscope series takes 30 labels "
        "and 9 are the profiler's and the spans' own; profiles are sent without l21, l22, l23",
    )


def test_a_service_name_too_long_is_cut_for_the_profiles() -> None:
    resolved = config.resolve({"OTEL_SERVICE_NAME": "s" * 3000})
    assert resolved.profiler is not None
    assert resolved.profiler.application_name == "s" * 2048
    assert resolved.notices == (
        "OTEL_SERVICE_NAME: 3000 bytes, more than the 2048 bytes of UTF-8 Pyroscope takes; "
        "profiles carry service_name cut to 2048 bytes, unlike the spans",
    )


def test_no_notice_when_profiling_is_off() -> None:
    resolved = config.resolve({"PYROSCOPE_LABELS": "t=" + "x" * 3000, "PYROSPAN_PROFILING": "0"})
    assert resolved.notices == ()


@pytest.mark.parametrize("strict", [False, True])
def test_notices_are_reported_once_and_strict_mode_stops(strict: bool) -> None:
    environ = {"PYROSCOPE_LABELS": "t=" + "x" * 3000, "PYROSPAN_STRICT": str(strict)}
    resolved = config.resolve(environ)
    said: list[str] = []
    stopped: list[bool] = []
    report_bad_settings(resolved, environ, said.append, lambda: stopped.append(True))
    report_bad_settings(resolved, environ, said.append, lambda: stopped.append(True))
    assert said == list(resolved.notices)  # the second call is a child's: not said again
    assert stopped == ([True, True] if strict else [])


# ---------------------------------------------------------------------- the app's tags


def app_tags(room: int = 3) -> tuple[AppTags, TagRecorder]:
    recorder = TagRecorder()
    return AppTags(recorder.add, recorder.remove, room), recorder


def test_an_apps_long_tag_value_is_cut_alike_when_set_and_removed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    tags, recorder = app_tags()
    tags.add("customer", "中" * 800)
    assert recorder.current() == {"customer": "中" * 682}
    tags.remove("customer", "中" * 800)
    assert recorder.current() == {}
    tags.add("customer", "c" * 3000)
    tags.remove("customer", "c" * 3000)
    assert capsys.readouterr().err == (
        "pyrospan: the value of the app's thread tag customer was cut to 2048 bytes of UTF-8, "
        "the most Pyroscope takes in a label value\n"
    )


def test_an_apps_tags_past_the_room_are_not_set(capsys: pytest.CaptureFixture[str]) -> None:
    tags, recorder = app_tags(room=2)
    for key in ("a", "b", "c", "d"):
        tags.add(key, "1")
    assert recorder.current().keys() == {"a", "b"}
    for key in ("d", "c", "b"):
        tags.remove(key, "1")
    tags.add("e", "1")  # room again, now that b left
    assert set(recorder.current()) == {"a", "e"}
    assert capsys.readouterr().err.count("pyrospan: ") == 1


def test_an_apps_tag_name_too_long_is_not_set(capsys: pytest.CaptureFixture[str]) -> None:
    tags, recorder = app_tags()
    tags.add("k" * 2000, "v")
    tags.remove("k" * 2000, "v")
    assert recorder.by_thread == {}
    tags.add("", "v")
    assert recorder.by_thread == {}
    assert "its name is more than 1024 bytes" in capsys.readouterr().err


def test_app_tags_stand_in_for_the_native_functions() -> None:
    class Native:
        def __init__(self) -> None:
            self.calls: list[tuple[str, str, object]] = []

        def add_thread_tag(self, key: str, value: object) -> None:
            self.calls.append(("add", key, value))

        def remove_thread_tag(self, key: str, value: str) -> None:
            self.calls.append(("remove", key, value))

    native: Any = Native()
    original = native.add_thread_tag
    tags = AppTags(native.add_thread_tag, native.remove_thread_tag, 5)
    tags.install(native)
    native.add_thread_tag("k", "v" * 3000)
    native.remove_thread_tag("k", "v" * 3000)
    native.add_thread_tag("k", 7)  # not text: left to the native function, as without us
    assert native.calls == [("add", "k", "v" * 2048), ("remove", "k", "v" * 2048), ("add", "k", 7)]
    tags.uninstall()
    assert native.add_thread_tag == original


# ---------------------------------------------------------------------- the relay, local mode


def test_the_relay_fits_the_series_labels_of_a_push() -> None:
    request: Any = schemas.PushRequest()
    series = request.series.add()
    series.labels.add(name="service_name", value="shop")
    series.labels.add(name="team", value="t" * 3000)
    series.labels.add(name="n" * 1100, value="v")
    changes: set[str] = set()
    assert fit_series_labels(series.labels, changes)
    assert [(pair.name, pair.value) for pair in series.labels] == [
        ("service_name", "shop"),
        ("team", "t" * 2048),
    ]
    assert len(changes) == 2
    assert not fit_series_labels(series.labels, changes)  # fitted now: nothing to change


def test_local_pprof_files_fit_their_labels_and_set_no_system_name() -> None:
    data = build_profile(
        [((("<module>", "app.py", 1), ("<lambda>", "app.py", 2)), 10)],
        period=10,
        labels={"span_id": "00000000000000aa", "span_name": "中" * 800},
    )
    profile: Any = schemas.Profile()
    profile.ParseFromString(gzip.decompress(data))
    table = list(profile.string_table)
    assert {table[fn.name] for fn in profile.function} == {"<module>", "<lambda>"}
    assert all(fn.system_name == 0 for fn in profile.function)
    labels = {table[label.key]: table[label.str] for label in profile.sample[0].label}
    assert labels == {"span_id": "00000000000000aa", "span_name": "中" * 682}


def test_the_limits_are_pyroscopes_defaults() -> None:
    assert (label_limits.MAX_NAME_BYTES, label_limits.MAX_VALUE_BYTES) == (1024, 2048)
    assert label_limits.MAX_SERIES_LABELS == 30
