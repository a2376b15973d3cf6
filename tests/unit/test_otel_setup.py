"""The distro and configurator that start OpenTelemetry; pyrospan-run's own when none is."""

from __future__ import annotations

import os
from types import SimpleNamespace

import opentelemetry.sdk._configuration as sdk_configuration
import pytest

from pyrospan_launch.agent import tracing
from pyrospan_launch.agent.import_hooks import ImportHooks
from pyrospan_launch.agent.lifecycle import Lifecycle
from pyrospan_launch.common import otel_setup


def test_the_installed_sdk_has_the_configurator_class() -> None:
    # make test-otel runs this at both ends of the supported range (1.38.0 and 1.45.x).
    assert otel_setup.sdk_configurator_base() is sdk_configuration._OTelSDKConfigurator


def test_own_configurator_subclasses_the_sdks_once() -> None:
    own = otel_setup.OwnConfigurator()
    made = own.configurator()
    assert issubclass(made, sdk_configuration._OTelSDKConfigurator)
    assert made is not sdk_configuration._OTelSDKConfigurator
    assert own.configurator() is made and own.available()


def test_without_the_class_the_configurator_is_missing_with_one_clear_line() -> None:
    own = otel_setup.OwnConfigurator(SimpleNamespace())  # type: ignore[arg-type]
    assert not own.available()
    with pytest.raises(otel_setup.SDKConfiguratorMissing) as raised:
        own.configurator()
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(
        "no OpenTelemetry configurator installed and opentelemetry.sdk._configuration has no "
        "_OTelSDKConfigurator"
    )
    assert "install opentelemetry-distro" in message


def test_a_name_that_is_not_a_class_is_not_taken() -> None:
    fake = SimpleNamespace(_OTelSDKConfigurator=lambda: None)
    assert otel_setup.sdk_configurator_base(fake) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": ""}, ""),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
    ],
)
def test_distro_defaults_are_set_as_the_distro_sets_them(
    environ: dict[str, str], expected: str
) -> None:
    otel_setup.set_distro_defaults(environ)
    assert environ["OTEL_TRACES_EXPORTER"] == expected


def test_a_configurator_named_but_not_installed_is_a_lookup_error() -> None:
    environ = {"OTEL_PYTHON_CONFIGURATOR": "no-such-configurator"}
    with pytest.raises(LookupError, match="OTEL_PYTHON_CONFIGURATOR='no-such-configurator'"):
        otel_setup.find(otel_setup.CONFIGURATOR_GROUP, otel_setup.CONFIGURATOR_VARIABLE, environ)
    _, configurator = otel_setup.describe(environ)
    assert configurator.startswith(
        "tracing will fail to start: OTEL_PYTHON_CONFIGURATOR='no-such-configurator' is not "
        "installed"
    )


def test_without_an_installed_configurator_tracing_stops_before_instrumenting() -> None:
    # The dev and OTel venvs have no distro (Makefile); the distro's tests bring their own.
    assert otel_setup.find(otel_setup.CONFIGURATOR_GROUP, "PYROSPAN_UNSET_NAME", {}) is None
    own = otel_setup.OwnConfigurator(SimpleNamespace())  # type: ignore[arg-type]
    os.environ.pop("OTEL_TRACES_EXPORTER", None)
    with pytest.raises(otel_setup.SDKConfiguratorMissing):
        tracing.start(Lifecycle(), ImportHooks(), own=own)
    # The distro's one default is set as opentelemetry-distro would have set it.
    assert os.environ["OTEL_TRACES_EXPORTER"] == "otlp"
    assert otel_setup.describe({}, own)[1] == (
        "none installed, and the SDK has no _OTelSDKConfigurator: tracing will be off; "
        "install opentelemetry-distro"
    )
