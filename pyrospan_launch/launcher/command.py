"""Find the program to run, explain clearly when it cannot run, and exec it.

Exec (not a child process) keeps the PID, signals and exit status the app's own, so
``pyrospan-run`` can be PID 1 in a container.  Errors follow the shell's conventions:
127 for a command that is not found, 126 for one that cannot be executed.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping, Sequence

# Every launch runs this module: it imports neither typing, re nor shutil (shutil brings
# bz2, lzma and fnmatch), which would cost more than the rest of the launcher.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

EXIT_NOT_FOUND = 127
EXIT_CANNOT_EXECUTE = 126


class CommandError(Exception):
    """The command cannot be run; ``str()`` is the line to show, ``exit_code`` the status."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _python_hint(command: str) -> str:
    if command.endswith(".py"):
        return f"; did you mean: pyrospan-run python {command}"
    return ""


def _is_python_name(command: str) -> bool:
    r"""``python``, ``python3`` or ``python3.12``: what ``python(\d+(\.\d+)?)?`` matches."""
    if not command.startswith("python"):
        return False
    major, dot, minor = command[len("python") :].partition(".")
    if not major:
        return not dot
    return major.isdecimal() and (not dot or minor.isdecimal())


def which(command: str, path: str | None = None) -> str | None:
    """``shutil.which(command, path=path)`` for a command name without a directory part."""
    if sys.platform == "win32":  # PATHEXT and the current directory: shutil knows them
        import shutil

        return shutil.which(command, path=path)
    if path is None:
        path = os.environ.get("PATH")
        if path is None:
            try:
                path = os.confstr("CS_PATH")
            except (AttributeError, ValueError):
                path = os.defpath
    if not path:
        return None  # PATH='' finds nothing, as in shutil; PATH=':' is the current directory
    seen = set()
    for directory in path.split(os.pathsep):
        if directory in seen:
            continue
        seen.add(directory)
        candidate = os.path.join(directory, command)
        if (
            os.path.exists(candidate)
            and os.access(candidate, os.F_OK | os.X_OK)
            and not os.path.isdir(candidate)
        ):
            return candidate
    return None


def own_environment_bin() -> str | None:
    """The bin directory of the virtual environment pyrospan-run runs from, if any."""
    if sys.prefix == sys.base_prefix:
        return None
    return os.path.dirname(sys.executable)


def resolve(command: str, environ: Mapping[str, str], prefer_dir: str | None = None) -> str:
    """The path that ``command`` names, looked up on the child's PATH like a shell would.

    ``prefer_dir`` is the launcher's own virtual environment: `.venv/bin/pyrospan-run
    python app.py` then runs that environment's python, as activating it would, instead
    of another interpreter on PATH that cannot load the bootstrap and would run the app
    silently untraced.
    """
    if os.sep in command or (os.altsep and os.altsep in command):
        return _check_file(command, command)
    path = environ.get("PATH", os.defpath)
    if prefer_dir and _is_python_name(command):
        on_path = {os.path.abspath(entry) for entry in path.split(os.pathsep) if entry}
        candidate = os.path.join(prefer_dir, command)
        if os.path.abspath(prefer_dir) not in on_path and os.access(candidate, os.X_OK):
            # The caller must pass this path as argv[0] too: Python finds its environment
            # from argv[0], and a bare "python" would be searched on PATH again.
            return candidate
    found = which(command, path)
    if found is not None:
        return found
    if os.path.isfile(command):
        # `pyrospan-run app.py`: the user means the file here.  Say why it cannot run.
        if not os.access(command, os.X_OK):
            return _check_file(command, command)
        raise CommandError(
            f"command not found: {command} (to run the file here, use ./{command})",
            EXIT_NOT_FOUND,
        )
    raise CommandError(f"command not found: {command}", EXIT_NOT_FOUND)


def program_path(command: str, environ: Mapping[str, str]) -> str:
    """The program the launcher will run for ``command``; ``--info`` asks the same."""
    return resolve(command, environ, own_environment_bin())


def _check_file(path: str, shown: str) -> str:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise CommandError(f"command not found: {shown}", EXIT_NOT_FOUND) from None
    except OSError as exc:
        raise CommandError(f"cannot run {shown}: {exc.strerror}", EXIT_CANNOT_EXECUTE) from None
    if stat.S_ISDIR(mode):
        raise CommandError(f"cannot run {shown}: is a directory", EXIT_CANNOT_EXECUTE)
    if not os.access(path, os.X_OK):
        raise CommandError(
            f"permission denied: {shown} is not executable{_python_hint(shown)}",
            EXIT_CANNOT_EXECUTE,
        )
    return path


def exec_command(path: str, argv: Sequence[str], environ: Mapping[str, str]) -> NoReturn:
    """Replace this process with the program; raises :class:`CommandError` if exec fails."""
    try:
        os.execve(path, list(argv), dict(environ))
    except OSError as exc:
        hint = _python_hint(argv[0]) if exc.errno == 8 else ""  # ENOEXEC: no shebang line
        raise CommandError(
            f"cannot run {argv[0]}: {exc.strerror}{hint}", EXIT_CANNOT_EXECUTE
        ) from None
