"""The ``pyrospan-run`` entry point: check the settings, prepare the environment, exec.

Most runs are ``pyrospan-run COMMAND ...`` with no option of the launcher's own: those go
straight to exec without loading the click command line, which would cost a container's
every start more time than the rest of the launcher together (issue 7).  Anything else
(an option, ``--help``, local mode) goes through :mod:`pyrospan_launch.cli`.  Both paths
use the same functions here, so they behave the same.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from pyrospan_launch import child_env, command, config
from pyrospan_launch.bootstrap import EXIT_STRICT, REPORTED_MARKER

# Not typing at run time: the fast path imports as little as it can (issue 7).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

PROG = "pyrospan-run"


def say(message: str) -> None:
    """One line from the launcher on stderr."""
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()


def check_settings(env: dict[str, str]) -> config.Config:
    """Report every value that does not parse, once, before the program starts."""
    resolved = config.resolve(env)
    if not resolved.errors:
        return resolved
    for error in resolved.errors:
        say(str(error))
    for part, reason in resolved.off_reasons.items():
        if "not valid" in reason:
            say(f"{part} is off for this run ({reason})")
    if resolved.strict:
        say("PYROSPAN_STRICT=true: not starting the program")
        sys.exit(EXIT_STRICT)
    env[REPORTED_MARKER] = "1"
    return resolved


def execute(
    argv: Sequence[str],
    env: dict[str, str],
    *,
    local: bool = False,
    report_dir: str = "",
    port: int | None = None,
) -> NoReturn:
    """Run ``argv`` with ``env``: exec it, or supervise it in local mode; exits either way."""
    resolved = check_settings(env)
    typed = tuple(argv)
    argv = tuple(argv)
    try:
        path = command.resolve(argv[0], env, command.own_environment_bin())
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


def bootstrap_dir() -> str:
    """The installed bootstrap directory; without one, one line and exit status 1."""
    try:
        return child_env.bootstrap_dir()
    except child_env.BootstrapMissing as exc:
        say(str(exc))
        sys.exit(1)


def _plain_run(args: Sequence[str]) -> bool:
    """True for ``COMMAND ...`` with no launcher option and no local mode asked for."""
    return bool(args) and not args[0].startswith("-") and not os.environ.get("PYROSPAN_LOCAL")


def main(args: Sequence[str] | None = None, prog_name: str = PROG) -> None:
    """Console-script entry point."""
    args = sys.argv[1:] if args is None else list(args)
    if _plain_run(args):
        environ = child_env.restore_auto_instrumentation(os.environ)
        env = child_env.build(environ, args, {}, bootstrap_dir())
        execute(args, env)
    from pyrospan_launch.cli import main as click_main

    click_main(args, prog_name)
