"""Which pyroscope-io sampler a run asks pyrospan-run for, checked against its ``--info``.

``PYROSPAN_SAMPLER`` chooses the sampler (``stack``: pyroscope-io's echion-based one,
``pyspy``: py-spy).  A pyrospan-run without that setting ignores the variable and
samples with py-spy, so a comparison would silently measure py-spy twice: ``check``
stops the benchmark with one line instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

SAMPLERS = ("stack", "pyspy")
VARIABLE = "PYROSPAN_SAMPLER"


def sampler_env(sampler: str) -> dict[str, str]:
    """The variables that choose ``sampler``."""
    return {VARIABLE: sampler}


def _knows_the_setting(launcher: Path) -> bool:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYROSPAN_")}
    info = subprocess.run(
        [str(launcher), "--info"], env=env, capture_output=True, text=True, check=False
    ).stdout
    return any(line.strip().startswith(VARIABLE) for line in info.splitlines())


def check(samplers: Iterable[str], launcher: Path | None = None) -> None:
    """SystemExit with one line unless pyrospan-run can run every sampler in ``samplers``."""
    launcher = launcher or Path(sys.executable).with_name("pyrospan-run")
    wanted = list(samplers)
    unknown = [s for s in wanted if s not in SAMPLERS]
    if unknown:
        raise SystemExit(f"unknown sampler {unknown[0]!r}; one of {', '.join(SAMPLERS)}")
    if wanted != ["pyspy"] and not _knows_the_setting(launcher):
        raise SystemExit(
            f"{launcher} has no {VARIABLE} setting (--info does not list it), so it samples "
            "with py-spy only: run with --samplers pyspy"
        )
