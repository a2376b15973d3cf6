"""The tests' recording receiver, for the benchmarks that score what a program sent.

``RecordingReceiver`` lives in ``tests/recording_receiver.py``, beside the tests that use
it; this puts that directory on ``sys.path`` once for every benchmark that imports it.
"""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from recording_receiver import RecordingReceiver  # noqa: E402

__all__ = ["RecordingReceiver"]
