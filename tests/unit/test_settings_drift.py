"""A setting is added in one place: the registry entry, which the Config and the CLI follow.

These fail on any drift: a registry entry naming a Config field that is not there, a
Config field no setting fills, a value that does not reach its field, an option the
launcher does not offer, or a variable read by its name outside ``settings/``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import click
import pytest

from pyrospan_launch.launcher.cli import _overrides, run
from pyrospan_launch.settings import registry
from pyrospan_launch.settings.config import Config, ProfilerConfig, resolve

PACKAGE = Path(__file__).resolve().parents[2] / "pyrospan_launch"

# Config fields that no single variable fills: what resolve() works out.
DERIVED = {
    "service_name_source",
    "profiler",
    "errors",
    "off_reasons",
    "invalid",
    "notices",
    "sampling",
}

# A valid value other than the default, and what the field then holds, per setting.
EXAMPLES: dict[str, tuple[str, object]] = {
    "PYROSPAN_PROFILING": ("false", False),
    "PYROSPAN_TRACING": ("false", False),
    "PYROSPAN_EAGER_INSTRUMENTATION": ("true", True),
    "PYROSPAN_SPAN_NAME_LABEL": ("false", False),
    "PYROSPAN_TRACE_ID_LABEL": ("true", True),
    "PYROSPAN_SPAN_LABELS": ("tags", "tags"),
    "PYROSPAN_SAMPLER": ("pyspy", "pyspy"),
    "PYROSPAN_EXIT_TIMEOUT": ("2500ms", 2.5),
    "PYROSPAN_STRICT": ("true", True),
    "PYROSPAN_LOG_LEVEL": ("debug", "debug"),
    "PYROSPAN_CHILDREN": ("false", False),
    "PYROSPAN_LOCAL": ("true", True),
    "PYROSPAN_REPORT_DIR": ("out", "out"),
    "PYROSCOPE_SERVER_ADDRESS": ("http://pyro:4040", "http://pyro:4040"),
    "PYROSCOPE_APPLICATION_NAME": ("shop-profiles", "shop-profiles"),
    "PYROSCOPE_LABELS": ("team=pay", {"team": "pay"}),
    "PYROSCOPE_SAMPLE_RATE": ("50", 50),
    "PYROSCOPE_UPLOAD_INTERVAL": ("3s", 3),
    "PYROSCOPE_BASIC_AUTH_USER": ("ann", "ann"),
    "PYROSCOPE_BASIC_AUTH_PASSWORD": ("pw", "pw"),
    "PYROSCOPE_TENANT_ID": ("t1", "t1"),
    "PYROSCOPE_HTTP_HEADERS": ('{"X-A": "1"}', {"X-A": "1"}),
    "PYROSCOPE_ONCPU": ("false", False),
    "PYROSCOPE_PROFILE_MEMORY": ("true", True),
    "OTEL_SERVICE_NAME": ("shop", "shop"),
}

# click's own options and local mode's tools, which set no variable.
NOT_SETTINGS = {"--serve", "--render", "--port", "--info", "--check", "--version", "--help"}


def _value(config: Config, field: str) -> object:
    if field.startswith("profiler."):
        assert config.profiler is not None
        return getattr(config.profiler, field.removeprefix("profiler."))
    return getattr(config, field)


def test_every_field_a_setting_names_exists() -> None:
    for setting in registry.ALL:
        if setting.field.startswith("profiler."):
            assert setting.field.removeprefix("profiler.") in ProfilerConfig._fields, setting
        elif setting.field:
            assert setting.field in Config._fields, setting


def test_every_config_field_is_filled_by_one_setting_or_derived() -> None:
    named = [setting.field for setting in registry.ALL if setting.field]
    assert len(named) == len(set(named))
    wanted = {*Config._fields, *(f"profiler.{field}" for field in ProfilerConfig._fields)}
    assert wanted - set(named) - DERIVED == set()


def test_every_settings_value_reaches_its_field() -> None:
    assert set(EXAMPLES) == {s.name for s in registry.ALL if s.field}
    for name, (raw, expected) in EXAMPLES.items():
        setting = registry.setting(name)
        config = resolve({name: raw})
        shown = _value(config, setting.field)
        if isinstance(expected, dict):
            assert isinstance(shown, dict) and expected.items() <= shown.items(), name
        else:
            assert shown == expected, name
        assert shown != _value(resolve({}), setting.field), name


def _cli_options() -> dict[str, click.Option]:
    return {p.opts[0]: p for p in run.params if isinstance(p, click.Option)}


def test_the_cli_offers_exactly_the_registrys_options() -> None:
    offered = _cli_options()
    wanted = {s.option for s in registry.ALL if s.option}
    assert set(offered) - NOT_SETTINGS == wanted
    for setting in registry.ALL:
        if setting.option:
            option = offered[setting.option]
            assert option.help is not None and f"({setting.name}" in option.help
            assert option.is_flag == (not setting.metavar)


@pytest.mark.parametrize("setting", [s for s in registry.ALL if s.option], ids=lambda s: s.name)
def test_each_option_sets_its_variable(setting: registry.Setting) -> None:
    option = _cli_options()[setting.option]
    assert option.name is not None
    value: str | bool = True if option.is_flag else "x"
    expected = (
        ("false" if setting.option.startswith("--no-") else "true") if option.is_flag else "x"
    )
    assert _overrides(**{option.name: value}) == {setting.name: expected}


# Calls whose first string argument is a variable's name when they read one.
_READS = {"get", "getenv", "read_quietly", "setting", "pop"}


def _reads_by_name(tree: ast.AST, names: set[str]) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if called in _READS and isinstance(first, ast.Constant) and first.value in names:
                found.append(f"{called}({first.value!r}) line {node.lineno}")
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and isinstance(node.slice, ast.Constant)
            and node.slice.value in names
        ):
            found.append(f"[{node.slice.value!r}] line {node.lineno}")
    return found


def test_no_setting_is_read_by_its_name_outside_settings() -> None:
    names = set(registry.BY_NAME)
    found = {
        str(path.relative_to(PACKAGE)): reads
        for path in PACKAGE.rglob("*.py")
        if path.parent.name != "settings"
        for reads in [_reads_by_name(ast.parse(path.read_text(encoding="utf-8")), names)]
        if reads
    }
    assert found == {}


def test_the_check_sees_a_read_by_name() -> None:
    code = 'os.environ.get("PYROSPAN_STRICT"); environ["OTEL_SERVICE_NAME"]'
    assert len(_reads_by_name(ast.parse(code), {"PYROSPAN_STRICT", "OTEL_SERVICE_NAME"})) == 2
