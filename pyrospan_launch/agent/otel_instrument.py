"""``opentelemetry-instrument`` and pyrospan-run in one command: one start-up, pyrospan-run's.

Both start OpenTelemetry from a ``sitecustomize`` put first on PYTHONPATH, with the same
distro, configurator and ``OTEL_*`` variables (``opentelemetry-instrument``'s options only
set those variables).  Run together, one would shadow the other or both would start:

* ``opentelemetry-instrument pyrospan-run python app.py``: pyrospan-run's directory comes
  first, and chaining the next ``sitecustomize`` would start OpenTelemetry a second time
  (a refused TracerProvider, every library instrumented twice);
* ``pyrospan-run opentelemetry-instrument python app.py``: opentelemetry-instrument puts
  its directory first before it execs the app, so pyrospan-run's never runs: no
  profiler, no links.

So pyrospan-run's start-up does the job for both: in the app, the auto-instrumentation
directory is taken off ``sys.path`` and PYTHONPATH; in the ``opentelemetry-instrument``
process, its exec is given a PYTHONPATH with pyrospan-run's directory first and without
its own.  Everything else it did stays (its options as variables, the current directory
it adds to PYTHONPATH).  One ``pyrospan:`` line says so.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from types import ModuleType

from pyrospan_launch.common import log

# typing for type checkers only: importing it costs every process milliseconds at start-up
# (docs/design.md, start-up imports).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrospan_launch.agent.import_hooks import ImportHooks

COMMAND = "opentelemetry-instrument"
AUTO_MODULE = "opentelemetry.instrumentation.auto_instrumentation"
_AUTO_DIR_TAIL = os.path.join("opentelemetry", "instrumentation", "auto_instrumentation")

NOTICE = (
    "opentelemetry-instrument and pyrospan-run in one command: pyrospan-run starts "
    "OpenTelemetry, once, with the same OTEL_* settings (opentelemetry-instrument's options "
    "included), and links spans to profiles"
)


def is_auto_instrumentation_dir(entry: str) -> bool:
    """True for opentelemetry-instrument's ``sitecustomize`` directory."""
    if not entry:
        return False
    path = os.path.normpath(os.path.abspath(entry))
    return path.endswith(_AUTO_DIR_TAIL) and os.path.isfile(os.path.join(path, "sitecustomize.py"))


def _without_auto_dirs(python_path: str) -> str:
    return os.pathsep.join(
        entry for entry in python_path.split(os.pathsep) if not is_auto_instrumentation_dir(entry)
    )


def is_wrapper_process() -> bool:
    """True in the ``opentelemetry-instrument`` process itself (it only execs the app)."""
    return bool(sys.argv) and os.path.basename(sys.argv[0]) == COMMAND


def take_over(bootstrap_dir: str | None, hooks: ImportHooks, *, tracing: bool = True) -> bool:
    """Make pyrospan-run's start-up the only one; True in the ``opentelemetry-instrument`` process.

    Call it in the bootstrap before the next ``sitecustomize`` is chained.  When it
    returns True, the bootstrap should start nothing: the process execs the app, which
    starts pyrospan-run there.  With pyrospan-run's ``tracing`` off, opentelemetry-instrument
    keeps its job: its ``sitecustomize`` stays on the path, after pyrospan-run's, and is
    chained as the user's would be.
    """
    if is_wrapper_process():
        if bootstrap_dir:
            _fix_exec(bootstrap_dir, hooks, keep_theirs=not tracing)
        return True
    if not tracing:
        log.debug("tracing off: opentelemetry-instrument's start-up, if any, runs after ours")
        return False
    if any(is_auto_instrumentation_dir(entry) for entry in sys.path):
        sys.path[:] = [entry for entry in sys.path if not is_auto_instrumentation_dir(entry)]
        python_path = os.environ.get("PYTHONPATH")
        if python_path is not None:
            os.environ["PYTHONPATH"] = _without_auto_dirs(python_path)
        log.warning(NOTICE)
    return False


def _fix_exec(bootstrap_dir: str, hooks: ImportHooks, *, keep_theirs: bool) -> None:
    """Have opentelemetry-instrument exec the app with pyrospan-run's directory first.

    Its own directory goes, unless ``keep_theirs`` (pyrospan-run's tracing is off).
    """

    def patch(module: ModuleType) -> None:
        original: Callable[..., Any] | None = getattr(module, "execl", None)
        if original is None:
            return

        def execl(path: str, *args: str) -> Any:
            from pyrospan_launch.common.python_path import python_path_with

            current = os.environ.get("PYTHONPATH", "")
            if not keep_theirs:
                current = _without_auto_dirs(current)
                log.warning(NOTICE)
            os.environ["PYTHONPATH"] = python_path_with(bootstrap_dir, current)
            return original(path, *args)

        module.execl = execl  # type: ignore[attr-defined]

    hooks.when_imported(AUTO_MODULE, patch)
