"""The stack guard: an app taking a signal the Stack sampler handles is seen first."""

from __future__ import annotations

import faulthandler
import signal
from collections.abc import Iterator

import pytest

from pyrospan_launch.agent.spans.span_markers import KeptCodes, make_marker
from pyrospan_launch.agent.stack_guard import StackGuard


@pytest.fixture
def seen() -> Iterator[tuple[list[str], list[bool]]]:
    reasons: list[str] = []
    active = [True]
    guard = StackGuard(reasons.append, lambda: active[0])
    guard.install()
    before = signal.getsignal(signal.SIGPROF)
    try:
        yield reasons, active
    finally:
        guard.uninstall()
        signal.signal(signal.SIGPROF, before)


def test_a_sigprof_handler_is_seen_before_it_is_set(
    seen: tuple[list[str], list[bool]],
) -> None:
    reasons, _ = seen

    def handler(signum: int, frame: object) -> None:
        pass

    signal.signal(signal.SIGPROF, handler)
    assert signal.getsignal(signal.SIGPROF) is handler
    assert reasons == [
        "the app sets its own SIGPROF handler, a signal the Stack sampler handles "
        "(its CPU timers' signal)"
    ]


def test_other_signals_and_an_inactive_guard_pass_straight_through(
    seen: tuple[list[str], list[bool]],
) -> None:
    reasons, active = seen
    before = signal.getsignal(signal.SIGUSR1)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, before)
    active[0] = False
    signal.signal(signal.SIGPROF, signal.SIG_IGN)
    assert reasons == []


def test_a_late_faulthandler_is_seen(seen: tuple[list[str], list[bool]]) -> None:
    reasons, _ = seen
    was = faulthandler.is_enabled()
    faulthandler.enable()
    if not was:
        faulthandler.disable()
    assert len(reasons) == 1 and reasons[0].startswith("the app enables faulthandler")


def test_a_bad_signal_number_raises_the_originals_error(
    seen: tuple[list[str], list[bool]],
) -> None:
    reasons, _ = seen
    with pytest.raises(ValueError, match="signal number out of range"):
        signal.signal(0, signal.SIG_IGN)
    assert reasons == []


def test_uninstall_puts_the_originals_back() -> None:
    original = signal.signal
    guard = StackGuard(lambda reason: None, lambda: True)
    guard.install()
    assert signal.signal is not original
    guard.uninstall()
    assert signal.signal is original


def test_marker_codes_are_kept_only_once_asked() -> None:
    kept = KeptCodes()
    kept.keep(make_marker("00000000000000aa").__code__)
    assert kept._kept is None
    kept.start(2)
    codes = [make_marker(f"{i:016x}").__code__ for i in range(3)]
    for code in codes:
        kept.keep(code)
    assert list(kept._kept or ()) == codes[1:]
