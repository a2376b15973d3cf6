"""Property tests: any value of any variable pyrospan-run reads is accepted or gets one clear line.

Hypothesis generates values for every entry of the settings registry: arbitrary text
(unicode, control characters, line breaks, huge values) and near-misses of each accepted
form.  ``Setting.read`` must return a value or raise a ``SettingError`` whose text is one
line, ``NAME=<value>: expected <accepted form>``, with secrets never shown.
``config.resolve`` must hold for any mix of them.  A few runs of a real program under
pyrospan-run with random values check the same end to end: the program runs (status 0),
no traceback, and every line on stderr is one of the launcher's one-line forms.
"""

from __future__ import annotations

import json
import re
import string
import sys
from collections.abc import Iterator

import pytest
from conftest import PROGRAMS, PYROSPAN_RUN, backend_env, run
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pyrospan_launch.receiver import Receiver
from pyrospan_launch.settings import config, registry
from pyrospan_launch.settings.registry import Setting, SettingError

PY = sys.executable
NAMES = [s.name for s in registry.ALL]

# Near-misses of every accepted form, so parsers meet more than random noise.
_words = st.sampled_from(
    [
        *("true", "false", "TRUE", "yes", "no", "on", "off", "1", "0", "debug", "INFO"),
        *("grpc", "http/protobuf", "http/json", "otlp", "console", "none", "always_on"),
        *("*", "=", ","),
    ]
)
_numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.from_regex(r"\A[+-]?\d{1,25}(\.\d{1,5})?\s?(ms|s|m|h|d|us)?\Z"),
    st.sampled_from(["9" * 5000, "1" + "0" * 400, "1e9", "0x10", "١٢", "²"]),
)
_urls = st.one_of(
    st.from_regex(r"\A(https?|ftp|file)?:?/{0,3}[a-z0-9.\-\[\]:@%]{0,40}(:\d{0,7})?(/\S{0,20})?\Z"),
    st.sampled_from(
        [
            "http://",
            "http://[::1",
            "http://host:port",
            "http://host:99999",
            "http://user:pw@host:4040/",
            "https://ex\u00e4mple.com",
            "http://a\uff0fb",
            "//host:4040",
        ]
    ),
)
_pairs = st.lists(
    st.tuples(st.text(max_size=8), st.sampled_from(["=", ":", ""]), st.text(max_size=8)).map(
        "".join
    ),
    max_size=4,
).map(",".join)
_json = st.one_of(
    st.dictionaries(st.text(max_size=6), st.one_of(st.text(max_size=6), st.integers()), max_size=3),
    st.lists(st.integers(), max_size=2),
).map(json.dumps)
_huge = st.builds(
    lambda chunk, times: chunk * times, st.text(min_size=1, max_size=3), st.integers(1, 40000)
)

VALUES = st.one_of(
    st.text(),  # any unicode, control characters and line breaks included
    st.text(alphabet=string.printable),
    _words,
    _numbers,
    _urls,
    _pairs,
    _json,
    _huge,
)


def assert_one_clear_line(setting: Setting, raw: str, error: SettingError) -> None:
    text = str(error)
    assert text.splitlines() == [text], repr(text)  # one line, whatever the value held
    assert text.startswith(f"{setting.name}="), text
    assert text.endswith(f": expected {setting.expected}"), text
    if setting.secret:
        assert text == f"{setting.name}=<redacted>: expected {setting.expected}"


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(raw=VALUES)
@example(raw="2" + "0" * 400)  # an interval of 2e400 s once overflowed float -> int
@example(raw="\u2028\x85\x1c")  # line breaks that are not "\n"
def test_every_value_is_accepted_or_one_clear_line(name: str, raw: str) -> None:
    setting = registry.setting(name)
    try:
        value = setting.read({name: raw})
    except SettingError as error:
        assert_one_clear_line(setting, raw, error)
        return
    if isinstance(setting.default, bool):
        assert isinstance(value, bool)
    elif isinstance(setting.default, int):
        assert isinstance(value, int) and value > 0


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(environ=st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=8))
def test_resolve_takes_any_environment(environ: dict[str, str]) -> None:
    resolved = config.resolve(environ)
    bad = {error.setting.name for error in resolved.errors}
    for error in resolved.errors:
        assert_one_clear_line(error.setting, environ[error.setting.name], error)
    # A bad value turns off its own part, and the reason names a variable.
    if bad & {s.name for s in registry.ALL if s.group == registry.PROFILING}:
        assert not resolved.profiling
        assert resolved.off_reasons["profiling"].split()[0] in NAMES
    if bad & {s.name for s in registry.ALL if s.group == registry.TRACING}:
        assert not resolved.tracing
        assert resolved.off_reasons["tracing"].split()[0] in NAMES
    for value in (resolved.service_name, resolved.log_level):
        assert isinstance(value, str)


# --- end to end ------------------------------------------------------------------------

# Local mode and the report directory change what the launcher does (a supervisor, files
# in the working directory), strictness its exit status, the log level how much it says:
# the unit properties above cover their values.
END_TO_END = [
    name
    for name in NAMES
    if name
    not in ("PYROSPAN_LOCAL", "PYROSPAN_REPORT_DIR", "PYROSPAN_STRICT", "PYROSPAN_LOG_LEVEL")
]
_SETTING_LINE = re.compile(r"pyrospan-run: (?P<name>[A-Z_]+)=.*: expected (?P<expected>.+)")
# A backend the values point at may fail at run time: that is reported in its own line.
_EXPORT_LINE = re.compile(r"pyrospan: (spans|metrics|logs|telemetry) (still )?not sent: .+")
_OFF_LINE = re.compile(
    r"pyrospan-run: (profiling|tracing) is off for this run \([A-Z_]+ is not valid\)"
)
# What the environment of a process can hold: no NUL, no lone surrogates.
_ENV_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=60
)
_ENV_VALUES = st.one_of(_ENV_TEXT, _words, _numbers, _urls, _pairs, _json).filter(
    lambda v: "\x00" not in v and not any(0xD800 <= ord(c) <= 0xDFFF for c in v)
)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as live:
        yield live


def assert_only_launcher_lines(stderr: str, environ: dict[str, str]) -> None:
    for line in stderr.splitlines():
        setting_line = _SETTING_LINE.fullmatch(line)
        if setting_line:
            setting = registry.setting(setting_line["name"])
            assert setting_line["expected"] == setting.expected, line
            assert setting_line["name"] in environ
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
@example(environ={"PYROSCOPE_UPLOAD_INTERVAL": "18446744073709551616"})
@example(environ={"OTEL_TRACES_EXPORTER": "//host:4040"})
@example(environ={"OTEL_TRACES_SAMPLER": "0"})
@example(environ={"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
@example(environ={"OTEL_EXPORTER_OTLP_PROTOCOL": " "})
@example(environ={"OTEL_EXPORTER_OTLP_HEADERS": "Authorization: Bearer abc"})
def test_a_program_runs_whatever_the_values(receiver: Receiver, environ: dict[str, str]) -> None:
    env = backend_env(receiver)
    env.update(environ)
    result = run([PYROSPAN_RUN, PY, str(PROGRAMS / "hot_span.py"), "0.05"], env, timeout=60)
    assert result.returncode == 0, (environ, result.stderr)
    assert "Traceback" not in result.stderr, (environ, result.stderr)
    assert result.stdout.startswith("span_id "), (environ, result.stdout, result.stderr)
    assert_only_launcher_lines(result.stderr, environ)
