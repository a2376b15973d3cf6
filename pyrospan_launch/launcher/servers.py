"""The server a command starts, as ``--info`` tells it, and the modes span profiles cannot cover.

Reads the command line only (the program's name, or ``python -m NAME``, and the options
that choose its workers); it runs on the launcher's fast path, so it imports nothing.
How each server is handled inside the app is in docs/design.md, "Servers".
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

# uWSGI reads every option from UWSGI_<NAME> too.  With this one it forks the way os.fork()
# does: the forking thread holds the GIL (and the import lock) across the fork, and Python's
# fork hooks run in the worker.  Without it a worker forked while another thread of the
# master (the profiler's relay, the span exporter) holds the GIL waits for it for ever.
UWSGI_FORK_HOOKS = "UWSGI_PY_CALL_UWSGI_FORK_HOOKS"

FORKED = "forked workers restart the profiler and the relay and report under their own pid"


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


def _uwsgi(argv: Sequence[str]) -> str:
    lazy = "--lazy-apps" in argv or "--lazy" in argv
    line = (
        "uWSGI: the master starts Python and forks the workers from C, told to run Python's "
        f"fork hooks ({UWSGI_FORK_HOOKS}=true unless set); " + FORKED
    )
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
        return _uwsgi(argv)
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
        and UWSGI_FORK_HOOKS not in environ
        and "--py-call-uwsgi-fork-hooks" not in argv
    ):
        return {UWSGI_FORK_HOOKS: "true"}
    return {}


def notice(argv: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """One line when span profiles cannot work in the server ``argv`` starts, else None."""
    if program(argv) == "granian" and _interface(argv, environ) == "rsgi":
        return _granian(argv, environ)
    return None
