"""What the app reads of the process stays its own: warning filters, SIGTERM, skipped records."""

from __future__ import annotations

import os
import signal
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pyrospan_launch.agent import instrumentations, lifecycle
from pyrospan_launch.agent.startup_warnings import StartupWarnings
from pyrospan_launch.common import skipped


@pytest.fixture
def app_filters() -> Iterator[None]:
    with warnings.catch_warnings():
        yield


def test_code_loads_under_the_start_up_filters_and_the_apps_come_back(app_filters: None) -> None:
    startup = StartupWarnings()
    warnings.simplefilter("error")
    apps = list(warnings.filters)
    with startup.applied():
        warnings.warn("inside an instrumentation", DeprecationWarning, stacklevel=1)  # no error
    assert warnings.filters == apps
    with pytest.raises(DeprecationWarning):
        warnings.warn("the app's own", DeprecationWarning, stacklevel=1)


def test_filters_the_loaded_code_adds_stay_behind_the_apps_own(app_filters: None) -> None:
    startup = StartupWarnings()
    warnings.simplefilter("error")
    with startup.applied():
        warnings.filterwarnings("ignore", "the sdk's own deprecation", DeprecationWarning)
    actions = [entry[0] for entry in warnings.filters[:2]]
    assert actions == ["error", "ignore"]  # where opentelemetry-instrument has it
    with startup.applied():
        assert warnings.filters[0][0] == "ignore"  # and kept for the next load


def test_a_skipped_instrumentation_is_recorded_for_info(tmp_path: Path) -> None:
    record = skipped.SkippedRecord(str(tmp_path / "skips.txt"))

    class Distro:
        def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
            warnings.warn("subclassing is discouraged", DeprecationWarning, stacklevel=1)
            raise RuntimeError("cannot patch")

    entry_point = SimpleNamespace(name="aiohttp-server", dist=None)
    loader = instrumentations._Loader(Distro(), StartupWarnings(), record)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loader.load(entry_point, "on import of aiohttp")  # type: ignore[arg-type]
    last = skipped.read(str(tmp_path / "skips.txt"))
    assert last is not None
    assert last.pid == str(os.getpid())
    assert last.skipped == [("aiohttp-server", "RuntimeError: cannot patch")]
    assert skipped.read(str(tmp_path / "none.txt")) is None


@pytest.fixture
def sigterm() -> Iterator[None]:
    functions = signal.signal, signal.getsignal
    handler = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal, signal.getsignal = functions
    signal.signal(signal.SIGTERM, handler)


def test_the_app_reads_sig_dfl_where_our_flush_stands_in(sigterm: None) -> None:
    calls: list[int] = []

    def ours(signum: int, frame: Any) -> None:
        calls.append(signum)

    original = signal.signal
    original(signal.SIGTERM, ours)
    assert lifecycle._report_default_for(ours) is original
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    def mine(signum: int, frame: Any) -> None:
        pass

    assert signal.signal(signal.SIGTERM, mine) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGTERM) is mine
    assert signal.signal(signal.SIGTERM, signal.SIG_DFL) is mine
    assert original(signal.SIGTERM, ours) is ours  # SIG_DFL put ours back
    assert signal.signal.__name__ == "signal" and signal.getsignal.__name__ == "getsignal"
