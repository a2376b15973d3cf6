"""Unit tests of the settings registry, config resolution and service-name derivation."""

from __future__ import annotations

import pytest

from pyrospan_launch.settings import registry
from pyrospan_launch.settings.config import derive_service_name, resolve
from pyrospan_launch.settings.registry import SettingError


@pytest.mark.parametrize(
    ("name", "raw", "line"),
    [
        (
            "PYROSCOPE_SAMPLE_RATE",
            "abc",
            "PYROSCOPE_SAMPLE_RATE='abc': expected a positive integer (Hz) up to 10000",
        ),
        (
            "PYROSCOPE_SAMPLE_RATE",
            "0",
            "PYROSCOPE_SAMPLE_RATE='0': expected a positive integer (Hz) up to 10000",
        ),
        (
            "PYROSCOPE_UPLOAD_INTERVAL",
            "-3",
            "PYROSCOPE_UPLOAD_INTERVAL='-3': expected a whole number of seconds from 1 to 3600, "
            "such as 10s, 1m or 15",
        ),
        (
            "PYROSCOPE_SERVER_ADDRESS",
            "pyroscope:4040",
            "PYROSCOPE_SERVER_ADDRESS='pyroscope:4040': expected an http(s) URL such as http://pyroscope:4040",
        ),
        (
            "PYROSCOPE_LABELS",
            "team=a,broken",
            "PYROSCOPE_LABELS='team=a,broken': expected k=v,k2=v2 (names of letters, digits and _)",
        ),
        ("PYROSPAN_STRICT", "maybe", "PYROSPAN_STRICT='maybe': expected true or false"),
        (
            "PYROSPAN_LOG_LEVEL",
            "loud",
            "PYROSPAN_LOG_LEVEL='loud': expected one of debug, info, warning, error",
        ),
        (
            "PYROSPAN_EXIT_TIMEOUT",
            "1m",
            "PYROSPAN_EXIT_TIMEOUT='1m': expected a duration from 100ms to 30s, such as 2s or "
            "1500ms",
        ),
    ],
)
def test_bad_value_gives_one_line_naming_variable_and_form(name: str, raw: str, line: str) -> None:
    with pytest.raises(SettingError) as caught:
        registry.setting(name).read({name: raw})
    assert str(caught.value) == line


def test_secret_value_is_never_echoed_in_an_error() -> None:
    with pytest.raises(SettingError) as caught:
        registry.setting("PYROSCOPE_HTTP_HEADERS").read(
            {"PYROSCOPE_HTTP_HEADERS": "{not json s3cr3t"}
        )
    assert "s3cr3t" not in str(caught.value)
    assert str(caught.value).startswith("PYROSCOPE_HTTP_HEADERS=<redacted>: expected")


@pytest.mark.parametrize(
    ("raw", "seconds"), [("10s", 10), ("15", 15), ("1m", 60), ("2000ms", 2), ("1", 1)]
)
def test_upload_interval_forms(raw: str, seconds: int) -> None:
    assert (
        registry.setting("PYROSCOPE_UPLOAD_INTERVAL").read({"PYROSCOPE_UPLOAD_INTERVAL": raw})
        == seconds
    )


@pytest.mark.parametrize(
    ("raw", "seconds"), [("2s", 2.0), ("2", 2.0), ("1500ms", 1.5), ("0.25", 0.25), ("30s", 30.0)]
)
def test_exit_timeout_forms(raw: str, seconds: float) -> None:
    assert registry.setting("PYROSPAN_EXIT_TIMEOUT").read({"PYROSPAN_EXIT_TIMEOUT": raw}) == seconds


@pytest.mark.parametrize("raw", ["0", "50ms", "31s", "-1", "2 seconds", "inf"])
def test_exit_timeout_out_of_range_or_malformed_is_refused(raw: str) -> None:
    with pytest.raises(SettingError):
        registry.setting("PYROSPAN_EXIT_TIMEOUT").read({"PYROSPAN_EXIT_TIMEOUT": raw})


def test_server_address_trailing_slash_tolerated() -> None:
    value = registry.setting("PYROSCOPE_SERVER_ADDRESS").read(
        {"PYROSCOPE_SERVER_ADDRESS": "http://p:4040/"}
    )
    assert value == "http://p:4040"


def test_headers_accept_json_and_pairs() -> None:
    read = registry.setting("PYROSCOPE_HTTP_HEADERS").read
    assert read({"PYROSCOPE_HTTP_HEADERS": '{"X-A": "1"}'}) == {"X-A": "1"}
    assert read({"PYROSCOPE_HTTP_HEADERS": "X-A=1,X-B=two"}) == {"X-A": "1", "X-B": "two"}


def test_every_setting_has_doc_form_and_group() -> None:
    for s in registry.ALL:
        assert (
            s.doc
            and s.expected
            and s.group in (registry.LAUNCHER, registry.PROFILING, registry.TRACING)
        )
    assert len({s.name for s in registry.ALL}) == len(registry.ALL)


def test_defaults_profile_and_trace_with_matching_identity() -> None:
    config = resolve({"OTEL_SERVICE_NAME": "shop"})
    assert config.profiling and config.tracing and not config.errors
    assert config.profiler is not None
    assert config.profiler.application_name == "shop"
    assert config.profiler.server_address == "http://localhost:4040"
    assert config.profiler.sample_rate == 100
    assert config.profiler.upload_interval == 10


def test_service_name_from_resource_attributes_and_labels_from_identity() -> None:
    config = resolve(
        {
            "OTEL_RESOURCE_ATTRIBUTES": "service.name=cart,service.namespace=shop,"
            "service.version=1.2,deployment.environment.name=prod",
            "PYROSCOPE_LABELS": "team=payments",
        }
    )
    assert config.service_name == "cart"
    assert config.profiler is not None
    assert config.profiler.application_name == "cart"
    assert config.profiler.tags == {
        "service_namespace": "shop",
        "service_version": "1.2",
        "deployment_environment_name": "prod",
        "team": "payments",
    }


def test_application_name_overrides_service_name_for_profiles_only() -> None:
    config = resolve({"OTEL_SERVICE_NAME": "shop", "PYROSCOPE_APPLICATION_NAME": "shop-prof"})
    assert config.service_name == "shop"
    assert config.profiler is not None and config.profiler.application_name == "shop-prof"


def test_bad_profiling_value_turns_only_profiling_off() -> None:
    config = resolve({"PYROSCOPE_SAMPLE_RATE": "abc"})
    assert not config.profiling and config.tracing
    assert config.off_reasons["profiling"] == "PYROSCOPE_SAMPLE_RATE is not valid"
    assert [str(e) for e in config.errors] == [
        "PYROSCOPE_SAMPLE_RATE='abc': expected a positive integer (Hz) up to 10000"
    ]


def test_bad_tracing_value_turns_only_tracing_off() -> None:
    config = resolve({"OTEL_EXPORTER_OTLP_ENDPOINT": "tempo:4318"})
    assert config.profiling and not config.tracing


def test_switches() -> None:
    config = resolve(
        {"PYROSPAN_PROFILING": "false", "PYROSPAN_TRACING": "0", "PYROSPAN_STRICT": "yes"}
    )
    assert not config.profiling and not config.tracing and config.strict


@pytest.mark.parametrize(
    ("command", "name"),
    [
        (["python", "app.py"], "app"),
        (["/usr/bin/python3.12", "-u", "src/shop/server.py", "--port", "1"], "server"),
        (["python", "-m", "uvicorn", "app:app"], "uvicorn"),
        (["python3", "-mhttp.server"], "http.server"),
        (["python", "-W", "ignore", "-c", "pass"], "python"),
        (["python"], "python"),
        (["gunicorn", "-w", "2", "app:wsgi"], "gunicorn"),
        (["/venv/bin/celery", "worker"], "celery"),
        ([], "unknown_service"),
    ],
)
def test_derive_service_name(command: list[str], name: str) -> None:
    assert derive_service_name(command) == name
