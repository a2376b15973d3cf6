"""A real program under pyrospan-run with random setting values runs, and stderr stays one-line.

The program runs (status 0), with no traceback, and every line on stderr is one of the
launcher's one-line forms.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator

import pytest
from helpers import PROGRAMS, PYROSPAN_RUN, backend_env, run
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from recording_receiver import RecordingReceiver
from setting_values import _json, _numbers, _pairs, _urls, _words

from pyrospan_launch.settings import registry

PY = sys.executable
NAMES = [s.name for s in registry.ALL]

pytestmark = pytest.mark.e2e


END_TO_END = [
    name
    for name in NAMES
    if name
    not in ("PYROSPAN_LOCAL", "PYROSPAN_REPORT_DIR", "PYROSPAN_STRICT", "PYROSPAN_LOG_LEVEL")
]
_SETTING_LINE = re.compile(r"pyrospan-run: (?P<name>[A-Z_]+)=.*: expected (?P<expected>.+)")
# A backend the values point at may fail at run time: that is reported in its own line.
_EXPORT_LINE = re.compile(
    r"pyrospan: (spans|metrics|logs|telemetry|profiles) (still )?not sent: .+"
    r"|pyrospan: spans not confirmed at exit: .+"
    r"|pyrospan: profiles: \d+ of \d+ pushes were not delivered this run .+"
)
_OFF_LINE = re.compile(
    r"pyrospan-run: (profiling|tracing) is off for this run \([A-Z_]+ is not valid\)"
)
# A value past one of Pyroscope's label limits is cut or left out, said once (settings/config).
_LIMIT_LINE = re.compile(
    r"pyrospan-run: (?P<name>[A-Z_]+): .+ Pyroscope( series)? takes.*; "
    r"profiles (carry .+|are sent without .+)"
)
# A value that parses but cannot take effect as asked is said once, naming its variable
# (a sample rate the Stack sampler's wall-clock loop cannot follow, before 3.12).
_NOTICE_LINE = re.compile(r"pyrospan: (?P<name>[A-Z_]+)=\S*: .+")
# What the environment of a process can hold: no NUL, no lone surrogates.
_ENV_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=60
)
_ENV_VALUES = st.one_of(_ENV_TEXT, _words, _numbers, _urls, _pairs, _json).filter(
    lambda v: "\x00" not in v and not any(0xD800 <= ord(c) <= 0xDFFF for c in v)
)


@pytest.fixture(scope="module")
def receiver() -> Iterator[RecordingReceiver]:
    with RecordingReceiver() as live:
        yield live


def assert_only_launcher_lines(stderr: str, environ: dict[str, str]) -> None:
    for line in stderr.splitlines():
        setting_line = _SETTING_LINE.fullmatch(line)
        if setting_line:
            setting = registry.setting(setting_line["name"])
            assert setting_line["expected"] == setting.expected, line
            assert setting_line["name"] in environ
            continue
        limit_line = _LIMIT_LINE.fullmatch(line)
        if limit_line:
            assert limit_line["name"] in environ, line
            continue
        notice_line = _NOTICE_LINE.fullmatch(line)
        if notice_line:
            assert notice_line["name"] in environ, line
            continue
        assert _OFF_LINE.fullmatch(line) or _EXPORT_LINE.fullmatch(line), (
            f"not a one-line report: {line!r}\n{stderr}"
        )


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(environ=st.dictionaries(st.sampled_from(END_TO_END), _ENV_VALUES, min_size=1, max_size=3))
# Values that once reached the program and failed there with a line that named neither
# the variable nor the form it takes.
@example(environ={"PYROSCOPE_SAMPLE_RATE": "4294967296"})
@example(environ={"PYROSCOPE_SAMPLE_RATE": "1"})
@example(environ={"PYROSCOPE_APPLICATION_NAME": "9" * 5000})
@example(environ={"PYROSCOPE_UPLOAD_INTERVAL": "18446744073709551616"})
@example(environ={"OTEL_TRACES_EXPORTER": "//host:4040"})
@example(environ={"OTEL_TRACES_SAMPLER": "0"})
@example(environ={"OTEL_TRACES_SAMPLER": ""})
@example(environ={"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
@example(environ={"OTEL_EXPORTER_OTLP_PROTOCOL": " "})
@example(environ={"OTEL_EXPORTER_OTLP_HEADERS": "Authorization: Bearer abc"})
def test_a_program_runs_whatever_the_values(
    receiver: RecordingReceiver, environ: dict[str, str]
) -> None:
    env = backend_env(receiver)
    env.update(environ)
    result = run([PYROSPAN_RUN, PY, str(PROGRAMS / "hot_span.py"), "0.05"], env, timeout=60)
    assert result.returncode == 0, (environ, result.stderr)
    assert "Traceback" not in result.stderr, (environ, result.stderr)
    assert result.stdout.startswith("span_id "), (environ, result.stdout, result.stderr)
    assert_only_launcher_lines(result.stderr, environ)
