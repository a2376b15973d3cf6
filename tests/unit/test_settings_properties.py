"""Property tests: any value of any variable pyrospan-run reads is accepted or gets one clear line.

Hypothesis generates values for every entry of the settings registry: arbitrary text
(unicode, control characters, line breaks, huge values) and near-misses of each accepted
form.  ``Setting.read`` must return a value or raise a ``SettingError`` whose text is one
line, ``NAME=<value>: expected <accepted form>``, with secrets never shown.
``config.resolve`` must hold for any mix of them.  tests/e2e/test_e2e_setting_values.py
checks the same end to end.
"""

from __future__ import annotations

import sys

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from setting_values import VALUES

from pyrospan_launch.settings import config, registry
from pyrospan_launch.settings.registry import Setting, SettingError

PY = sys.executable
NAMES = [s.name for s in registry.ALL]


def assert_one_clear_line(setting: Setting, raw: str, error: SettingError) -> None:
    text = str(error)
    assert text.splitlines() == [text], repr(text)  # one line, whatever the value held
    assert text.startswith(f"{setting.name}="), text
    assert text.endswith(f": expected {setting.expected}"), text
    if setting.secret:
        assert text == f"{setting.name}=<redacted>: expected {setting.expected}"


@pytest.mark.parametrize("name", NAMES)
# No deadline: a first call that loads a parser's module took 0.3 s on a busy machine.
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
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
