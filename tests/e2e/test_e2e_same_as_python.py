"""End to end: the app prints, exits and handles signals exactly as it does without us.

Every case runs tests/programs/behaves.py twice, with plain python and under pyrospan-run
with profiling and tracing on against a live receiver, and compares stdout, stderr and
the exit status byte for byte: exit codes, an exception out of the program, sys.exit with
a message, a thread dying of an exception, and signals (default actions, SIGINT's
KeyboardInterrupt traceback, the app's own handlers, an ignored SIGTERM).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from helpers import PROGRAMS, PYROSPAN_RUN, backend_env, clean_env, run, start_server
from recording_receiver import RecordingReceiver

pytestmark = pytest.mark.e2e

PY = sys.executable
PROGRAM = str(PROGRAMS / "behaves.py")

Outcome = tuple[int, str, str]


def outcome(
    result: subprocess.CompletedProcess[str] | subprocess.Popen[str], out: str, err: str
) -> Outcome:
    return result.returncode, out, err


def assert_traced(receiver: RecordingReceiver) -> None:
    """The launched run really had the SDK and the profiler on: its span arrived, linked."""
    assert receiver.wait_for(lambda r: any(s.name == "behaves" for s in r.spans), timeout=15)
    (span,) = [s for s in receiver.spans if s.name == "behaves"]
    assert span.attributes["pyroscope.profile.id"] == span.span_id


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["output", "0"], id="exit-0"),
        pytest.param(["output", "7"], id="exit-7"),
        pytest.param(["raise"], id="uncaught-exception"),
        pytest.param(["exit-message"], id="sys-exit-message"),
        pytest.param(["thread-error"], id="thread-dies"),
    ],
)
def test_output_and_exit_status_are_the_apps(receiver: RecordingReceiver, args: list[str]) -> None:
    plain = run([PY, PROGRAM, *args], clean_env())
    launched = run([PYROSPAN_RUN, PY, PROGRAM, *args], backend_env(receiver))
    assert outcome(launched, launched.stdout, launched.stderr) == outcome(
        plain, plain.stdout, plain.stderr
    )
    assert_traced(receiver)


def signalled(command: list[str], env: dict[str, str], sent: signal.Signals) -> Outcome:
    """Run until the program says ``ready``, send it ``sent``, and collect what it did."""
    process = start_server(command, env)
    assert process.stdout is not None
    before = []
    for line in process.stdout:
        before.append(line)
        if line == "ready\n":
            break
    # "ready" is flushed from inside print(): a signal sent at once can land there rather
    # than in the sleep after it, and Python's traceback then names another line.
    time.sleep(0.3)
    process.send_signal(sent)
    try:
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, "".join(before) + out, err


@pytest.mark.parametrize(
    ("mode", "sent"),
    [
        pytest.param("wait", signal.SIGTERM, id="sigterm-default"),
        pytest.param("wait", signal.SIGINT, id="sigint-keyboard-interrupt"),
        pytest.param("wait", signal.SIGHUP, id="sighup-default"),
        pytest.param("wait", signal.SIGUSR1, id="sigusr1-default"),
        pytest.param("handler", signal.SIGTERM, id="sigterm-app-handler"),
        pytest.param("handler", signal.SIGINT, id="sigint-app-handler"),
        pytest.param("ignore", signal.SIGTERM, id="sigterm-ignored"),
    ],
)
def test_signals_end_the_app_as_they_would_without_us(
    receiver: RecordingReceiver, mode: str, sent: signal.Signals, default_dispositions: None
) -> None:
    plain = signalled([PY, PROGRAM, mode], clean_env(), sent)
    launched = signalled([PYROSPAN_RUN, PY, PROGRAM, mode], backend_env(receiver), sent)
    assert launched == plain
    if mode == "wait":
        assert plain[0] == -sent  # the signal's own action, not an exit status
    if sent in (signal.SIGTERM, signal.SIGINT):
        # These end the process through Python, which sends the last data first; SIGHUP's
        # and SIGUSR1's default actions kill it on the spot, with whatever was not sent.
        assert_traced(receiver)


@pytest.mark.parametrize("method", ["frames", "tags"])
def test_ctrl_c_before_the_first_upload_still_ends_by_sigint(
    receiver: RecordingReceiver, method: str, default_dispositions: None
) -> None:
    # No span is ever made, so linking never starts: the relay loads its HTTP modules for
    # the last window, during the exit flush, which must not change how Python ends.
    env = backend_env(receiver, PYROSPAN_SPAN_LABELS=method)
    env["PYROSCOPE_UPLOAD_INTERVAL"] = "10"  # only the exit flush uploads: no wait
    program = str(PROGRAMS / "untraced_wait.py")
    for _ in range(3):  # the flush's imports reset the exit on most runs, not all
        plain = signalled([PY, program], clean_env(), signal.SIGINT)
        launched = signalled([PYROSPAN_RUN, PY, program], env, signal.SIGINT)
        assert launched == plain
        assert plain[0] == -signal.SIGINT
    assert receiver.wait_for(lambda r: r.profiles, timeout=10)  # the flush sent the window
