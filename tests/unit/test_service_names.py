"""Unit tests: which service.name spans take when the app names its profiles, and what is said."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from pyrospan_launch.agent.otel_compat import rename_service
from pyrospan_launch.agent.service_names import ServiceNames
from pyrospan_launch.settings.config import DERIVED_SERVICE_NAME


def provider(name: str) -> TracerProvider:
    return TracerProvider(resource=Resource.create({"service.name": name}))


def derived(name: str) -> dict[str, str]:
    return {"OTEL_SERVICE_NAME": name, DERIVED_SERVICE_NAME: name}


def test_rename_service_renames_what_tracers_and_spans_share() -> None:
    ours = provider("server")
    tracer = ours.get_tracer("t")
    with tracer.start_as_current_span("before") as open_span:
        assert rename_service(ours.resource, "shop")
    assert ours.resource.attributes["service.name"] == "shop"
    assert open_span.resource.attributes["service.name"] == "shop"  # type: ignore[attr-defined]
    with tracer.start_as_current_span("after") as span:
        pass
    assert span.resource.attributes["service.name"] == "shop"  # type: ignore[attr-defined]
    # Everything else of the resource stays.
    assert ours.resource.attributes["telemetry.sdk.language"] == "python"


def test_rename_service_refuses_what_is_not_an_sdk_resource() -> None:
    assert rename_service(object(), "shop") is False


def test_derived_name_follows_the_app_in_our_provider_and_the_environment() -> None:
    environ = derived("server")
    ours = provider("server")
    ending = ServiceNames(environ).profiles_named("shop", ours, None)
    assert ending == "; spans take service.name 'shop' too, so span profiles stay linked"
    assert ours.resource.attributes["service.name"] == "shop"
    assert environ == derived("shop")  # providers made later, and child processes, agree


def test_before_opentelemetry_starts_the_environment_names_the_spans() -> None:
    environ = derived("server")
    ending = ServiceNames(environ).profiles_named("shop", None, None)
    assert ending == "; spans take service.name 'shop' too, so span profiles stay linked"
    assert environ["OTEL_SERVICE_NAME"] == "shop"


def test_the_users_own_service_name_is_kept_and_the_line_says_what_to_set() -> None:
    environ = {"OTEL_SERVICE_NAME": "traces"}
    ours = provider("traces")
    ending = ServiceNames(environ).profiles_named("shop", ours, None)
    assert ending == (
        "; but spans have service.name 'traces' and profiles service_name 'shop', so Grafana "
        "finds no profile for a span: set OTEL_SERVICE_NAME=shop"
    )
    assert ours.resource.attributes["service.name"] == "traces"
    assert environ == {"OTEL_SERVICE_NAME": "traces"}


def test_an_app_provider_named_in_code_cannot_follow() -> None:
    ending = ServiceNames(derived("server")).profiles_named("shop", None, provider("own"))
    assert ending.endswith(
        "so Grafana finds no profile for a span: give the app's TracerProvider resource and "
        "its pyroscope.configure() one name"
    )


def test_names_that_already_agree_say_only_that() -> None:
    environ = {"OTEL_SERVICE_NAME": "shop"}
    assert ServiceNames(environ).profiles_named("shop", provider("shop"), None) == (
        "; span profiles stay linked"
    )


def test_a_taken_over_provider_is_checked_against_the_profiles() -> None:
    names = ServiceNames(derived("server"))
    names.profile_name = "server"
    assert names.provider_taken_over(provider("server")) == ""
    assert names.provider_taken_over(provider("own")) == (
        "but spans have service.name 'own' and profiles service_name 'server', so Grafana "
        "finds no profile for a span: set PYROSCOPE_APPLICATION_NAME=own"
    )
    names.profile_name = None  # no profiler of ours: nothing to link, nothing to say
    assert names.provider_taken_over(provider("own")) == ""
