"""End to end: every label that leaves the process fits Pyroscope's ingest limits.

Grafana Pyroscope rejects a whole profile when one of its series has a label value over
2,048 bytes of UTF-8, a name over 1,024 bytes or more than 30 label names, where a
sample's string labels (``span_id`` apart) join the push's own labels.  Programs run under
pyrospan-run with the real profiler, in both span-label modes; the receiver decodes the
push API as the server would (protobuf refuses a string that is not valid UTF-8, so a push
that arrives decoded is valid UTF-8).  ``go tool pprof`` reads local mode's files and what
the relay forwards.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fake_backends import recording_backend
from helpers import PROGRAMS, PYROSPAN_RUN, backend_env, clean_env, run
from recording_receiver import RecordingReceiver

from pyrospan_launch.receiver.profiles import decode_pprof
from pyrospan_launch.receiver.records import ProfileSeries
from pyrospan_launch.wire import schemas
from pyrospan_launch.wire.body import Budget, decompress_within

pytestmark = pytest.mark.e2e

PY = sys.executable
MODES = ("frames", "tags")
# What a 3,000-character ASCII name and an 800 x "中" name (2,400 bytes) become.
CUT_NAMES = {"ascii": "a" * 2048, "cjk": "中" * 682}


def series_labels(profile: ProfileSeries) -> list[dict[str, str]]:
    """The label set of the series each sample of ``profile`` lands in, as Pyroscope makes it."""
    sets = []
    for sample in profile.samples:
        labels = dict(profile.labels)
        for key, value in sample.labels.items():
            if key != "span_id":
                labels.setdefault(key, value)
        sets.append(labels)
    return sets


def assert_within_limits(receiver: RecordingReceiver) -> None:
    """Every series of every profile received is one Pyroscope's defaults accept."""
    assert receiver.errors == []
    assert receiver.profiles
    for profile in receiver.profiles:
        for labels in series_labels(profile):
            assert len(labels) <= 30, sorted(labels)
            for name, value in labels.items():
                assert len(name.encode()) <= 1024, name[:60]
                assert len(value.encode()) <= 2048, (name, len(value.encode()))


def cpu_ms(receiver: RecordingReceiver, span_id: str, function: str) -> float:
    samples = receiver.samples_with_label("span_id", span_id)
    return sum(s.values[0] for s in samples if s.leaf == function) / 1e6


def cpu_at_least(span_id: str, function: str, ms: float) -> Callable[[RecordingReceiver], bool]:
    """A ``wait_for`` predicate: ``function`` has ``ms`` of CPU labelled with ``span_id``."""
    return lambda r: cpu_ms(r, span_id, function) >= ms


@pytest.mark.parametrize("kind", sorted(CUT_NAMES))
@pytest.mark.parametrize("mode", MODES)
def test_long_span_names_fit_and_their_profiles_arrive(
    receiver: RecordingReceiver, mode: str, kind: str
) -> None:
    env = backend_env(receiver, PYROSPAN_SPAN_LABELS=mode)
    result = run([PYROSPAN_RUN, PY, str(PROGRAMS / "long_span_names.py"), kind, "0.6"], env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    spans = [line.split() for line in result.stdout.splitlines()]
    assert [where for where, _ in spans] == ["thread", "task", "task"]
    functions = {"thread": "burn_on_thread", "task": "burn_in_task"}
    for where, span_id in spans:
        assert receiver.wait_for(cpu_at_least(span_id, functions[where], 200), timeout=20), (
            where,
            cpu_ms(receiver, span_id, functions[where]),
        )
        names = {s.labels.get("span_name") for s in receiver.samples_with_label("span_id", span_id)}
        assert names == {CUT_NAMES[kind]}
    assert_within_limits(receiver)


def test_user_labels_that_cannot_fit_are_cut_and_said_once(receiver: RecordingReceiver) -> None:
    env = backend_env(
        receiver,
        PYROSCOPE_LABELS="team=" + "t" * 3000 + ",region=eu",
        OTEL_RESOURCE_ATTRIBUTES="service.version=" + "中" * 800,
    )
    # A Python child that bootstraps too, its stderr the same as its parent's.
    starts_child = (
        "import subprocess, sys; "
        f"subprocess.run([sys.executable, {str(PROGRAMS / 'hot_span.py')!r}, '0.3'], check=True)"
    )
    result = run([PYROSPAN_RUN, PY, "-c", starts_child], env)
    assert result.returncode == 0, result.stderr
    # Once for the whole run, the launcher's child and its own child included.
    assert result.stderr.splitlines() == [
        "pyrospan-run: OTEL_RESOURCE_ATTRIBUTES: the value of service_version is 2400 bytes, more "
        "than the 2048 bytes of UTF-8 Pyroscope takes; profiles carry it cut to 2046 bytes",
        "pyrospan-run: PYROSCOPE_LABELS: the value of team is 3000 bytes, more than the 2048 bytes "
        "of UTF-8 Pyroscope takes; profiles carry it cut to 2048 bytes",
    ]
    assert receiver.wait_for(lambda r: bool(r.samples_with_label("span_name", "checkout")), 20)
    for profile in receiver.profiles:
        assert profile.labels["team"] == "t" * 2048
        assert profile.labels["service_version"] == "中" * 682
        assert profile.labels["region"] == "eu"
    assert_within_limits(receiver)


def test_strict_mode_stops_on_a_label_that_cannot_fit(receiver: RecordingReceiver) -> None:
    env = backend_env(receiver, PYROSCOPE_LABELS="team=" + "t" * 3000, PYROSPAN_STRICT="true")
    result = run([PYROSPAN_RUN, PY, "-c", "print('ran')"], env)
    assert result.returncode == 3
    assert result.stdout == ""
    assert "pyrospan-run: PYROSCOPE_LABELS: the value of team is 3000 bytes" in result.stderr


def test_too_many_user_labels_leave_the_last_out(receiver: RecordingReceiver) -> None:
    labels = ",".join(f"l{i:02d}=v" for i in range(25))
    env = backend_env(receiver, PYROSCOPE_LABELS=labels)
    result = run([PYROSPAN_RUN, PY, str(PROGRAMS / "hot_span.py"), "0.4"], env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "pyrospan-run: PYROSCOPE_LABELS: 25 profile labels in all, but a Pyroscope series takes 30 "
        "labels and 8 are the profiler's and the spans' own; profiles are sent without l22, "
        "l23, l24\n"
    )
    span_id = result.stdout.split()[1]
    assert receiver.wait_for(lambda r: cpu_ms(r, span_id, "burn_cpu_in_span") > 100, timeout=20)
    assert {f"l{i:02d}" for i in range(22)} <= set(receiver.profiles[0].labels)
    assert_within_limits(receiver)


@pytest.mark.parametrize("mode", MODES)
def test_the_apps_own_tags_fit(receiver: RecordingReceiver, mode: str) -> None:
    env = backend_env(receiver, PYROSPAN_SPAN_LABELS=mode)
    result = run([PYROSPAN_RUN, PY, str(PROGRAMS / "app_tags.py")], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done\n"
    assert result.stderr.splitlines() == [
        "pyrospan: the value of the app's thread tag customer was cut to 2048 bytes of UTF-8, "
        "the most Pyroscope takes in a label value",
        "pyrospan: the app's thread tag tag22 was not set, nor any past the first 22 on a "
        "thread: with the profiler's own labels and the span labels, a Pyroscope series takes "
        "at most 30",
    ]

    def leaf_samples(r: RecordingReceiver, leaf: str) -> list[dict[str, str]]:
        return [s.labels for s in r.samples() if s.leaf == leaf]

    def leaf_ms(r: RecordingReceiver, leaf: str) -> float:
        return sum(s.values[0] for s in r.samples() if s.leaf == leaf) / 1e6

    assert receiver.wait_for(lambda r: leaf_ms(r, "burn_many_tags") >= 300, timeout=20)
    assert receiver.wait_for(
        lambda r: any("region" in labels for labels in leaf_samples(r, "burn_long_tag")),
        timeout=20,
    )
    long_tagged = leaf_samples(receiver, "burn_long_tag")
    assert {labels.get("customer") for labels in long_tagged} >= {"c" * 2048}
    assert {labels.get("region") for labels in long_tagged} >= {"中" * 682}
    # The many-tags stretch carries the 22 tags that fit, and never one past them.  py-spy's
    # tags are looked up on pyroscope-io's second thread some time after the stack was read
    # (README: how far thread tags fall behind): under load, the stretch's last samples can
    # be looked up after tag_wrapper removed the tags, and carry fewer or none.
    fitted = frozenset(f"tag{i:02d}" for i in range(22))
    ms_by_tags: dict[frozenset[str], float] = {}
    for sample in receiver.samples():
        if sample.leaf == "burn_many_tags":
            names = frozenset(k for k in sample.labels if k.startswith("tag"))
            ms_by_tags[names] = ms_by_tags.get(names, 0.0) + sample.values[0] / 1e6
    assert all(names <= fitted for names in ms_by_tags), sorted(ms_by_tags, key=len)
    assert ms_by_tags.get(fitted, 0.0) >= 0.9 * sum(ms_by_tags.values()), ms_by_tags
    assert_within_limits(receiver)


@pytest.mark.parametrize("mode", MODES)
def test_the_apps_own_configure_tags_fit(receiver: RecordingReceiver, mode: str) -> None:
    env = backend_env(receiver, PYROSPAN_SPAN_LABELS=mode)
    program = [PY, str(PROGRAMS / "own_profiler.py"), receiver.url, "中" * 800]
    result = run([PYROSPAN_RUN, *program], env)
    assert result.returncode == 0, result.stderr
    assert (
        "pyrospan: the app's pyroscope.configure(): tag team cut to fit Pyroscope's limits on "
        "labels (2048 bytes of UTF-8 a value)\n"
    ) in result.stderr
    span_id = result.stdout.split()[1]
    assert receiver.wait_for(lambda r: cpu_ms(r, span_id, "own_profiler_work") >= 200, 20)
    own = [p for p in receiver.profiles if p.service_name == "own-app"]
    assert own and {p.labels["team"] for p in own} == {"中" * 682}
    assert_within_limits(receiver)


# ---------------------------------------------------------------------- go tool pprof

GO = shutil.which("go")
BRACKETED = ["<module>", "<lambda>", "<genexpr>"]
if sys.version_info < (3, 12):
    BRACKETED.append("<listcomp>")  # inlined into its function from 3.12 on (PEP 709)
# pprof's note for a profile without a main binary (Python has none): not an error.
PPROF_NOTE = "Main binary filename not available."


def pprof_raw(path: Path) -> str:
    """``go tool pprof -raw`` of ``path``: it must succeed and say nothing but its note."""
    assert GO is not None, "go is not installed (Debian's golang-go)"
    done = subprocess.run(
        [GO, "tool", "pprof", "-raw", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stderr.splitlines() if line != PPROF_NOTE] == []
    return done.stdout


def function_names(raw: str) -> set[str]:
    """The function names of the ``Locations`` section of ``pprof -raw`` output."""
    names = set()
    lines = raw.split("\nLocations\n", 1)[1].split("\nMappings\n", 1)[0].splitlines()
    for line in lines:
        # "     3: 0x0 M=1 <lambda> /path/file.py:28 s=0()"
        parts = line.split()
        if len(parts) >= 5:
            names.add(parts[3])
    return names


def test_go_pprof_reads_what_the_relay_forwards(
    tmp_path: Path, receiver: RecordingReceiver
) -> None:
    with recording_backend() as (url, recorded):
        env = {**backend_env(receiver), "PYROSCOPE_SERVER_ADDRESS": url}
        result = run([PYROSPAN_RUN, PY, str(PROGRAMS / "bracket_names.py")], env)
        assert result.returncode == 0, result.stderr
        pushes = recorded.lowercase_headers()
    raws = []
    for _, headers, body in pushes:
        request = schemas.PushRequest()
        data = decompress_within(body, headers.get("content-encoding"), Budget(1 << 26))
        request.ParseFromString(data)
        raws += [bytes(sample.raw_profile) for s in request.series for sample in s.samples]
    assert raws
    names: set[str] = set()
    for i, raw in enumerate(raws):
        file = tmp_path / f"push{i}.pb.gz"
        file.write_bytes(raw)  # gzipped or not, as pyroscope-io made it: pprof reads both
        names |= function_names(pprof_raw(file))
    assert set(BRACKETED) <= names
    assert not any(name.startswith("pyrospan.span:") for name in names)


def test_go_pprof_reads_local_modes_files(tmp_path: Path) -> None:
    report = tmp_path / "report"
    result = run(
        [
            PYROSPAN_RUN,
            "--local",
            "--report-dir",
            str(report),
            PY,
            str(PROGRAMS / "bracket_names.py"),
        ],
        clean_env(),
    )
    assert result.returncode == 0, result.stderr
    (span_file,) = (report / "pprof").glob("brackets-*.pb.gz")
    raw = pprof_raw(span_file)
    assert set(BRACKETED) <= function_names(raw)
    assert "span_name:[brackets]" in raw
    assert set(BRACKETED) <= function_names(pprof_raw(report / "pprof" / "process.pb.gz"))


def test_local_modes_files_carry_long_span_names_cut(tmp_path: Path) -> None:
    report = tmp_path / "report"
    command = [PY, str(PROGRAMS / "long_span_names.py"), "cjk", "0.4"]
    result = run([PYROSPAN_RUN, "--local", "--report-dir", str(report), *command], clean_env())
    assert result.returncode == 0, result.stderr
    files = sorted((report / "pprof").glob("*-*.pb.gz"))
    assert len(files) == 3
    for file in files:
        profile = decode_pprof(file.read_bytes())
        assert {s.labels["span_name"] for s in profile.samples} == {CUT_NAMES["cjk"]}
        assert "span_name:[" + CUT_NAMES["cjk"] + "]" in pprof_raw(file)
