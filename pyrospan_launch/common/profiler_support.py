"""Whether pyroscope-io can run here, and the one line that says why not.

pyroscope-io is a dependency only on the Pythons it publishes wheels for (pyproject's
environment marker; README, "Python versions").  Elsewhere pyrospan-run installs without
it and traces, links and runs local mode's span list without CPU profiles.  The bootstrap
says so in one line at start, and ``--info`` says the same, from here.
"""

from __future__ import annotations

import sys

# The first Python pyrospan-run installs without pyroscope-io: it has no wheel for it, and
# its source distribution needs a Rust toolchain and crates to build.
FIRST_PYTHON_WITHOUT_WHEEL = (3, 15)
EXTRA = "profiling"


def is_missing(exc: BaseException) -> bool:
    """True when ``exc`` is the import of pyroscope-io itself failing: it is not installed."""
    return isinstance(exc, ModuleNotFoundError) and exc.name == "pyroscope"


def unavailable_reason(version: tuple[int, ...] | None = None) -> str:
    """The one line for a Python where pyroscope-io cannot be imported (no ``pyrospan:``)."""
    major, minor = (version or sys.version_info)[:2]
    here = f"Python {major}.{minor}"
    install = f'pip install "pyrospan-run[{EXTRA}]"'
    if (major, minor) >= FIRST_PYTHON_WITHOUT_WHEEL:
        return (
            f"CPU profiling is unavailable on {here}: pyroscope-io publishes no wheel for it "
            "yet, so pyrospan-run was installed without it; tracing and span links "
            f"(pyroscope.profile.id) run without profiles. Once pyroscope-io supports {here}: "
            f"{install}"
        )
    return (
        f"CPU profiling is unavailable: pyroscope-io is not installed in this environment "
        f"({sys.prefix}); tracing and span links (pyroscope.profile.id) run without "
        f"profiles. To profile: {install}"
    )
