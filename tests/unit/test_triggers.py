"""The cached list of modules whose first import starts OpenTelemetry."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyrospan_launch.agent import triggers


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def test_the_cache_round_trips_and_rejects_another_key() -> None:
    key: list[object] = [2, "3.11", "/prefix"]
    text = triggers._dump(key, {"flask": ["flask"], "urllib": ["urllib.request"]})
    assert triggers._load(text, key) == {"flask": ["flask"], "urllib": ["urllib.request"]}
    assert triggers._load(text, [*key, "changed"]) is None


def test_the_first_run_writes_the_cache_and_the_next_reads_it(cache_home: Path) -> None:
    computed = {"flask": ["flask"], "requests": ["requests"]}
    assert triggers.by_instrumentation(lambda: computed) == computed
    (written,) = (cache_home / "pyrospan-run").iterdir()

    def must_not_compute() -> dict[str, list[str]]:
        raise AssertionError("the cache was not used")

    assert triggers.by_instrumentation(must_not_compute) == computed
    assert written.read_text(encoding="utf-8").endswith("requests\trequests\n")


@pytest.mark.parametrize(
    ("disabled", "expected"),
    [
        ("", ["flask", "requests"]),
        ("flask", ["requests"]),
        (" flask , requests ", []),
        (" * ", []),
    ],
)
def test_disabled_instrumentations_start_nothing(disabled: str, expected: list[str]) -> None:
    installed = {"flask": ["flask"], "requests": ["requests"]}
    environ = {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": disabled}
    assert triggers.modules(environ, installed) == expected
