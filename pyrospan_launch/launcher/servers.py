"""The server a command starts, as ``--info`` tells it, and the modes span profiles cannot cover.

Reads the command line (the program's name, or ``python -m NAME``, and the options that
choose its workers) and, for uWSGI's mules, the config files it names; it runs on the
launcher's fast path, so it imports nothing but constants.
How each server is handled inside the app is in docs/design.md, "Servers".
"""

from __future__ import annotations

import os

from pyrospan_launch.common import uwsgi_options

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

# Without the fork hooks a worker forked while another thread of the master (the profiler's
# relay, the span exporter) holds the GIL waits for it for ever.  With mules the launcher
# leaves them off: uWSGI 2.0 crashes its mules under them (common/uwsgi_options).
UWSGI_FORK_HOOKS = uwsgi_options.FORK_HOOKS_VARIABLE

FORKED = "forked workers restart the profiler and the relay and report under their own pid"
# Where uWSGI reads options from a file: each of these, and a lone file argument.
_UWSGI_CONFIG_OPTIONS = ("--ini", "--yaml", "--yml", "--json", "--js", "--xml")
_UWSGI_CONFIG_ENDINGS = (".ini", ".yaml", ".yml", ".json", ".js", ".xml")


def program(argv: Sequence[str]) -> str:
    """The program a command runs: its file name, or the module of ``python -m``."""
    if not argv:
        return ""
    name = os.path.basename(argv[0])
    if name.startswith("python") and len(argv) > 2 and argv[1] == "-m":
        return argv[2]
    return name


def option(argv: Sequence[str], *names: str) -> str | None:
    """The value of the last of ``names`` given (``-k X``, ``--k X`` or ``--k=X``), else None."""
    found = None
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                found = argv[i + 1]
            elif arg.startswith(f"{name}="):
                found = arg.partition("=")[2]
    return found


def _names_a_mule(entry: str) -> bool:
    """A line of a uWSGI config file (ini, YAML, JSON or XML) that starts mules."""
    text = entry.strip().lstrip("<\"'- \t").lower()
    for name in uwsgi_options.MULES:
        if text.startswith(name):
            rest = text[len(name) :].lstrip(" \t\"'")
            if rest[:1] == "/":  # <mule/>: a mule with no script
                return True
            if rest[:1] in ("=", ":", ">"):
                return rest[1:].strip(" \t\"',<>/").partition("<")[0] not in ("0", "")
    return False


def _config_files(argv: Sequence[str]) -> list[str]:
    files = [argv[1]] if len(argv) == 2 and argv[1].endswith(_UWSGI_CONFIG_ENDINGS) else []
    for i, arg in enumerate(argv):
        name, equals, value = arg.partition("=")
        if name in _UWSGI_CONFIG_OPTIONS:
            files.append(value if equals else (argv[i + 1] if i + 1 < len(argv) else ""))
    # "app.ini:section" names a section of the file.
    return [f.rpartition(":")[0] if ":" in f and not os.path.exists(f) else f for f in files]


def uwsgi_mules(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Whether the uWSGI command starts mules: its options, ``UWSGI_*`` variables, config files.

    The files are read as text, line by line (no include or placeholder is followed): a
    mule they do not show starts under the fork hooks and crashes, and the first worker
    names the variable to set (agent/uwsgi_workers).
    """
    for name in uwsgi_options.MULES:
        value = option(argv, f"--{name}")
        if value is not None and value != "0":
            return True
        if environ.get(f"UWSGI_{name.upper()}", "0") not in ("0", ""):
            return True
    if "--mule" in argv:  # a mule with no script: the option takes no value then
        return True
    for path in _config_files(argv):
        try:
            with open(path, encoding="utf-8", errors="replace") as config:
                if any(_names_a_mule(line) for line in config):
                    return True
        except OSError:
            continue
    return False


def _fork_hooks_chosen(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Whether the user set uWSGI's fork hooks flag, on or off: the launcher leaves it."""
    return UWSGI_FORK_HOOKS in environ or f"--{uwsgi_options.FORK_HOOKS}" in argv


def _uwsgi(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    lazy = "--lazy-apps" in argv or "--lazy" in argv
    if not _fork_hooks_chosen(argv, environ) and uwsgi_mules(argv, environ):
        hooks = (
            "not told to run Python's fork hooks, as its mules crash under "
            "--py-call-uwsgi-fork-hooks (uWSGI 2.0); each worker runs them itself"
        )
    else:
        hooks = f"told to run Python's fork hooks ({UWSGI_FORK_HOOKS}=true unless set)"
    line = f"uWSGI: the master starts Python and forks the workers from C, {hooks}; " + FORKED
    line += " (the app loads in each worker: --lazy-apps)" if lazy else ""
    if option(argv, "--threads") not in (None, "0", "1"):
        line += "; each request thread runs in its span's marker"
    if "--die-on-term" not in argv:
        line += "; without --die-on-term, uWSGI 2.0 reloads on SIGTERM instead of stopping"
    return line


def _gunicorn(argv: Sequence[str]) -> str:
    worker = option(argv, "-k", "--worker-class") or "sync"
    if worker.endswith("UvicornWorker"):
        return f"gunicorn with uvicorn workers: {FORKED}; each request runs in its span's marker"
    if worker == "gevent" or worker.endswith("GeventWorker"):
        return (
            f"gunicorn with gevent workers: {FORKED}; the agent's threads stay real threads "
            "under monkey-patching, and each greenlet's request runs in its span's marker"
        )
    if worker == "eventlet":
        return "gunicorn with eventlet workers: not in gunicorn any more (it removed them)"
    return f"gunicorn with {worker} workers: {FORKED}; each request runs in its span's marker"


def _interface(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    return option(argv, "--interface") or environ.get("GRANIAN_INTERFACE") or "rsgi"


def _granian(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    interface = _interface(argv, environ)
    if interface == "rsgi":
        return (
            "granian --interface rsgi: OpenTelemetry has no RSGI instrumentation, so requests "
            "make no spans and no span profiles (profiles are still sent); use --interface "
            "asgi or wsgi"
        )
    return f"granian ({interface}): {FORKED}; each request runs in its span's marker"


def _celery(argv: Sequence[str]) -> str:
    pool = option(argv, "-P", "--pool") or "prefork"
    if pool == "prefork":
        return f"celery worker, prefork pool: {FORKED}; each task runs in its span's marker"
    return f"celery worker, {pool} pool: each task runs in its span's marker"


def describe(argv: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """How the server ``argv`` starts is handled, in one line; None for other programs."""
    name = program(argv)
    if name.startswith("uwsgi"):
        return _uwsgi(argv, environ)
    if name == "gunicorn":
        return _gunicorn(argv)
    if name == "granian":
        return _granian(argv, environ)
    if name == "celery" and "worker" in argv:
        return _celery(argv)
    if name in ("uvicorn", "hypercorn"):
        workers = option(argv, "--workers", "-w")
        how = f"{FORKED if workers not in (None, '1') else 'one process'}"
        return f"{name}: {how}; each request runs in its span's marker from its first step"
    if name == "daphne":
        return "daphne: one process; each request runs in its span's marker from its first step"
    return None


def environment(argv: Sequence[str], environ: Mapping[str, str]) -> dict[str, str]:
    """Variables the server ``argv`` starts needs in its environment (none for most)."""
    if (
        program(argv).startswith("uwsgi")
        and not _fork_hooks_chosen(argv, environ)
        and not uwsgi_mules(argv, environ)
    ):
        return {UWSGI_FORK_HOOKS: "true"}
    return {}


def notice(argv: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """One line when span profiles cannot work in the server ``argv`` starts, else None."""
    if program(argv) == "granian" and _interface(argv, environ) == "rsgi":
        return _granian(argv, environ)
    return None
