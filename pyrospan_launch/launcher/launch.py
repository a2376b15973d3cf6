"""The ``pyrospan-run`` entry point: check the settings, prepare the environment, exec.

Most runs are ``pyrospan-run COMMAND ...`` with no option of the launcher's own: those go
straight to exec without loading the click command line, which would cost a container's
every start more time than the rest of the launcher together (docs/design.md, start-up
imports).  Anything else (an option, ``--help``, local mode) goes through
:mod:`pyrospan_launch.launcher.cli`.  Both end in :mod:`pyrospan_launch.launcher.program`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from pyrospan_launch.launcher import child_env, program
from pyrospan_launch.settings import reads


def _plain_run(args: Sequence[str]) -> bool:
    """True for ``COMMAND ...`` with no launcher option and no local mode asked for."""
    return bool(args) and not args[0].startswith("-") and not reads.local_requested(os.environ)


def main(args: Sequence[str] | None = None, prog_name: str = program.PROG) -> None:
    """Console-script entry point."""
    args = sys.argv[1:] if args is None else list(args)
    if _plain_run(args):
        environ = child_env.restore_auto_instrumentation(os.environ)
        env = child_env.build(environ, args, {}, program.bootstrap_dir())
        program.execute(args, env, program.check_settings(env))
    from pyrospan_launch.launcher.cli import main as click_main

    click_main(args, prog_name)
