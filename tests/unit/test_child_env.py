"""Unit tests of the child environment: PYTHONPATH handling and the derived service name."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

from pyrospan_launch.common.python_path import python_path_with, python_path_without
from pyrospan_launch.launcher import child_env
from pyrospan_launch.launcher.child_env import build

BOOT = "/opt/pyrospan/_bootstrap"


def test_bootstrap_alone_when_user_has_no_pythonpath() -> None:
    assert python_path_with(BOOT, None) == BOOT
    assert python_path_with(BOOT, "") == BOOT  # no trailing separator: that would add the cwd


def test_user_entries_kept_in_order_after_bootstrap() -> None:
    assert python_path_with(BOOT, "/a:/b") == f"{BOOT}:/a:/b"


def test_prepended_exactly_once_when_nested() -> None:
    once = python_path_with(BOOT, "/a")
    twice = python_path_with(BOOT, once)
    assert twice == once
    assert twice.split(os.pathsep).count(BOOT) == 1


def test_user_empty_entry_is_theirs_and_kept() -> None:
    # A user who wrote PYTHONPATH=":/a" asked for the cwd; we keep it, we never add one.
    assert python_path_with(BOOT, ":/a") == f"{BOOT}::/a"


def test_without_removes_every_occurrence() -> None:
    assert python_path_without(BOOT, f"{BOOT}:/a:{BOOT}/") == "/a"


def test_build_applies_overrides_and_derives_service_name() -> None:
    env = build({"PATH": "/bin"}, ["python", "shop.py"], {"PYROSCOPE_SAMPLE_RATE": "50"}, BOOT)
    assert env["PYTHONPATH"] == BOOT
    assert env["OTEL_SERVICE_NAME"] == "shop"
    assert env["PYROSCOPE_SAMPLE_RATE"] == "50"
    assert env["PATH"] == "/bin"


def test_build_keeps_user_service_name() -> None:
    env = build({"OTEL_RESOURCE_ATTRIBUTES": "service.name=cart"}, ["python", "x.py"], {}, BOOT)
    assert "OTEL_SERVICE_NAME" not in env
    env = build({"OTEL_SERVICE_NAME": "cart"}, ["python", "x.py"], {}, BOOT)
    assert env["OTEL_SERVICE_NAME"] == "cart"


def test_opentelemetry_instruments_directory_goes_back_on_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Older opentelemetry-instrument releases take their directory off PYTHONPATH in the
    # process they start (the launcher); it goes back so the app still sees it.
    auto = tmp_path / "opentelemetry" / "instrumentation" / "auto_instrumentation"
    auto.mkdir(parents=True)
    module = types.ModuleType("sitecustomize")
    module.__file__ = str(auto / "sitecustomize.py")
    monkeypatch.setitem(sys.modules, "sitecustomize", module)
    restored = child_env.restore_auto_instrumentation({"PYTHONPATH": "/user/a"})
    assert restored["PYTHONPATH"] == f"{auto}{os.pathsep}/user/a"
    assert child_env.restore_auto_instrumentation(restored) == restored  # once only
    monkeypatch.setitem(sys.modules, "sitecustomize", types.ModuleType("sitecustomize"))
    assert child_env.restore_auto_instrumentation({"PYTHONPATH": "/user/a"}) == {
        "PYTHONPATH": "/user/a"
    }
