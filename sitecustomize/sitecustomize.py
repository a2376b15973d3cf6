# pyrospan-run bootstrap: do not modify.
#
# pyrospan-run puts this directory first on PYTHONPATH, so Python imports this file at
# start-up, before the program.  It starts tracing and profiling through
# pyrospan_launch.agent.bootstrap, then runs the sitecustomize this file shadows, if any.
# It must never raise: an interpreter that cannot import pyrospan_launch (another
# Python found on PATH) runs untouched and silent.  Plain syntax on purpose, so even an
# old interpreter that reads this file does not print "Error in sitecustomize".
import os
import sys


def _pyrospan_run_shadowed_sitecustomize(here):
    """Import the next sitecustomize on sys.path, as site.py would have, exactly once."""
    ours = sys.modules.pop("sitecustomize", None)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    try:
        try:
            import sitecustomize  # noqa: F401 - the user's own, found further down sys.path
        except ImportError as exc:
            if getattr(exc, "name", None) != "sitecustomize":
                raise
    except Exception as exc:  # reported the way site.py reports it
        if sys.flags.verbose:
            sys.excepthook(*sys.exc_info())
        else:
            sys.stderr.write(
                "Error in sitecustomize; set PYTHONVERBOSE for traceback:\n%s: %s\n"
                % (exc.__class__.__name__, exc)
            )
    finally:
        if "sitecustomize" not in sys.modules and ours is not None:
            sys.modules["sitecustomize"] = ours


def _pyrospan_import_own_package(here):
    """Import pyrospan_launch from the copy holding this file, not a folder of that name in the cwd."""
    if "pyrospan_launch" in sys.modules:
        return
    # Installed, this file is <site-packages>/pyrospan_launch/_bootstrap/sitecustomize.py.
    # Only an interpreter that has that site-packages on its path is ours: another one
    # (another Python on PATH) must not load a package installed for a different one.
    root = os.path.dirname(os.path.dirname(here))
    if root not in [os.path.abspath(p or os.curdir) for p in sys.path]:
        return
    sys.path.insert(0, root)
    try:
        import pyrospan_launch  # noqa: F401 - its submodules follow its own __path__
    finally:
        if sys.path and sys.path[0] == root:
            del sys.path[0]


def _pyrospan_start():
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        _pyrospan_import_own_package(here)
        from pyrospan_launch.agent.stdlib_imports import only_stdlib

        with only_stdlib():
            from pyrospan_launch.agent import bootstrap
    except Exception:
        if os.environ.get("PYROSPAN_LOG_LEVEL", "").lower() == "debug":
            sys.stderr.write(
                "pyrospan: %s cannot import pyrospan_launch; running untraced\n" % sys.executable
            )
    else:
        with only_stdlib():
            bootstrap.initialize(bootstrap_dir=here)
    _pyrospan_run_shadowed_sitecustomize(here)


_pyrospan_start()
