"""Which pyroscope-io sampler a run asks pyrospan-run for, checked against its ``--info``.

``PYROSPAN_SAMPLER`` chooses the sampler (``stack``: pyroscope-io's echion-based one,
``pyspy``: py-spy).  A pyrospan-run without that setting ignores the variable and
samples with py-spy, and one that cannot run a sampler here says so in ``--info``;
either way a comparison would silently measure something else: ``check`` stops the
benchmark with one line instead.
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


# How --info's "sampler" line names each sampler.
INFO_NAMES = {"stack": "Stack", "pyspy": "py-spy"}


def info_sampler(sampler: str, launcher: Path | None = None, **extra: str) -> str:
    """The sampler --info says it would use with ``sampler`` asked for ("" if it says none).

    ``extra`` adds variables that take part in the choice (``PYROSPAN_SPAN_LABELS``...).
    """
    launcher = launcher or Path(sys.executable).with_name("pyrospan-run")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYROSPAN_")}
    info = subprocess.run(
        [str(launcher), "--info"],
        env={**env, **sampler_env(sampler), **extra},
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    for line in info.splitlines():
        words = line.split()
        if len(words) > 1 and words[0] == "sampler":
            return words[1]
    return ""


def check(samplers: Iterable[str], launcher: Path | None = None) -> None:
    """SystemExit with one line unless pyrospan-run would run every sampler in ``samplers``."""
    launcher = launcher or Path(sys.executable).with_name("pyrospan-run")
    for sampler in samplers:
        if sampler not in SAMPLERS:
            raise SystemExit(f"unknown sampler {sampler!r}; one of {', '.join(SAMPLERS)}")
        said = info_sampler(sampler, launcher)
        if not said and sampler == "pyspy":
            continue  # a pyrospan-run from before the setting: py-spy is all it has
        if said != INFO_NAMES[sampler]:
            raise SystemExit(
                f"{launcher} --info with {VARIABLE}={sampler} says the sampler is "
                f"{said or 'not shown (no such setting)'}, not {INFO_NAMES[sampler]}"
            )
