"""Run a workload (workload.py) to its end against a receiver and score its samples."""

from __future__ import annotations

import json
import subprocess

from judge import Score, score
from recording import RecordingReceiver


def run_and_score(
    receiver: RecordingReceiver, command: list[str], env: dict[str, str], what: str
) -> Score:
    """Run ``command``; score what ``receiver`` got against the span owners it printed.

    The workload's last stdout line maps each root span id to its function; the score
    waits until every one of those spans has arrived.
    """
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{what} failed:\n{done.stderr}")
    owner = json.loads(done.stdout.splitlines()[-1])["owner"]
    receiver.wait_for(lambda r: {s.span_id for s in r.spans} >= set(owner), timeout=30)
    return score(receiver.samples(), owner)
