"""Secrets are hidden in every form they travel in: as written, percent-decoded, JSON, in a URL."""

from __future__ import annotations

from pyrospan_launch.common import redact

SECRET = "Zq-PLANTED-s3cr3t-91"


def test_every_form_of_a_planted_secret_is_hidden() -> None:
    environ = {
        "PYROSCOPE_BASIC_AUTH_PASSWORD": f" {SECRET} ",
        "PYROSCOPE_HTTP_HEADERS": f'{{"X-Api-Key": "json-{SECRET}"}}',
        "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20enc-{SECRET}",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"a=b,X-Key=plain-{SECRET}",
        "OTEL_SERVICE_NAME": "not-a-secret",
    }
    secrets = redact.secret_values(environ)
    text = (
        f"pw {SECRET}; json json-{SECRET}; decoded Bearer enc-{SECRET}; token enc-{SECRET}; "
        f"raw Bearer%20enc-{SECRET}; plain plain-{SECRET}; service not-a-secret"
    )
    clean = redact.scrub(text, secrets)
    assert SECRET not in clean
    assert "service not-a-secret" in clean
    assert clean.count(redact.SHOWN_INSTEAD) == 6


def test_a_password_in_a_url_is_hidden() -> None:
    assert (
        redact.scrub("to http://user:hunter22@host:4318/v1/traces now", [])
        == "to http://user:<redacted>@host:4318/v1/traces now"
    )
    assert redact.scrub("http://host:4040", []) == "http://host:4040"


def test_nothing_to_hide_leaves_text_alone() -> None:
    assert redact.secret_values({}) == []
    assert redact.scrub("spans not sent: connection refused", []) == (
        "spans not sent: connection refused"
    )
