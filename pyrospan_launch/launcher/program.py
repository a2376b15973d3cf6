"""Run the program: resolve its command, then exec it (or supervise it in local mode).

Both the fast path of :mod:`pyrospan_launch.launcher.launch` and the click command line
of :mod:`pyrospan_launch.launcher.cli` end here, so they behave the same.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from pyrospan_launch.launcher import command
from pyrospan_launch.settings import config
from pyrospan_launch.settings.report import EXIT_STRICT, report_bad_settings

# The launcher's fast path imports no typing (see docs/design.md, start-up imports).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

PROG = "pyrospan-run"


def say(message: str) -> None:
    """One line from the launcher on stderr."""
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()


def bootstrap_dir() -> str:
    """The installed bootstrap directory; without one, one line and exit status 1."""
    from pyrospan_launch.launcher import child_env

    try:
        return child_env.bootstrap_dir()
    except child_env.BootstrapMissing as exc:
        say(str(exc))
        sys.exit(1)


def _stop_strict() -> NoReturn:
    say("PYROSPAN_STRICT=true: not starting the program")
    sys.exit(EXIT_STRICT)


def check_settings(env: dict[str, str]) -> config.Config:
    """Resolve ``env`` and report every value that does not parse, before the program starts."""
    resolved = config.resolve(env)
    report_bad_settings(resolved, env, say, _stop_strict, first=True)
    if resolved.tracing:
        from pyrospan_launch.common import trust

        conflict = trust.span_conflict(env)
        if conflict is not None:
            say(conflict)
    return resolved


def execute(
    argv: Sequence[str],
    env: dict[str, str],
    resolved: config.Config,
    *,
    local: bool = False,
    report_dir: str = "",
    port: int | None = None,
) -> NoReturn:
    """Run ``argv`` with ``env``: exec it, or supervise it in local mode; exits either way."""
    typed = tuple(argv)
    argv = tuple(argv)
    try:
        path = command.program_path(argv[0], env)
        if resolved.log_level == "debug":
            say(f"{'run' if local else 'exec'} {path} {' '.join(argv[1:])}")
        sys.stdout.flush()
        sys.stderr.flush()
        if os.path.basename(path) == argv[0] and command.which(argv[0], env.get("PATH")) != path:
            argv = (path, *argv[1:])  # found outside PATH: Python locates its venv from argv[0]
        if local:
            from pyrospan_launch.local import modes

            debug = resolved.log_level == "debug"
            sys.exit(
                modes.run_local(path, argv, env, report_dir, port or 0, shown=typed, debug=debug)
            )
        command.exec_command(path, argv, env)
    except command.CommandError as exc:
        say(str(exc))
        sys.exit(exc.exit_code)
