"""Report the settings that do not parse, once per process tree, and stop in strict mode.

The launcher and the bootstrap both call :func:`report_bad_settings`: the launcher before
exec, the bootstrap when a program runs with the bootstrap but without the launcher.  The
first to report marks the environment, so the children that inherit the same bad value
(workers, reloaders) do not repeat it.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping

from pyrospan_launch.settings.config import Config

# The exit status of a run that strict mode stops.
EXIT_STRICT = 3

# Set in the environment once the bad values have been reported.
REPORTED_MARKER = "_PYROSPAN_CONFIG_REPORTED"


def problem_lines(config: Config) -> list[str]:
    """One line per value that does not parse, then one per part it turned off.

    Then one per value changed to fit Pyroscope's limits (``config.notices``).
    """
    lines = [str(error) for error in config.errors]
    lines += [f"{part} is off for this run ({reason})" for part, reason in config.invalid.items()]
    lines += list(config.notices)
    return lines


def report_bad_settings(
    config: Config,
    environ: MutableMapping[str, str],
    say: Callable[[str], None],
    stop: Callable[[], None],
    *,
    first: bool = False,
) -> None:
    """Say every bad or changed value of ``config`` once, then ``stop`` if strict mode is on.

    ``first`` (the launcher, where a run begins) reports even when ``environ`` says a
    parent process already did; the bootstrap does not repeat a parent's lines.
    """
    if not config.errors and not config.notices:
        return
    if first or environ.get(REPORTED_MARKER) != "1":
        for line in problem_lines(config):
            say(line)
        environ[REPORTED_MARKER] = "1"
    if config.strict:
        stop()
