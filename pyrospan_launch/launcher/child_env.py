"""Build the environment the launched program runs with (a pure function, easy to test).

The launcher changes as little as it can: it prepends the bootstrap directory to
PYTHONPATH exactly once, applies the variables its own options stand for, and names
the service when the user has not.  Everything else passes through untouched.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

import pyrospan_launch
from pyrospan_launch.common.python_path import python_path_with, same_dir
from pyrospan_launch.settings import reads
from pyrospan_launch.settings.config import (
    DERIVED_SERVICE_NAME,
    derive_service_name,
    service_name_of,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec


class BootstrapMissing(RuntimeError):
    """No installed copy of pyrospan-run holds the bootstrap directory."""


def bootstrap_dir() -> str:
    """The directory holding the injected ``sitecustomize.py`` (inside the installed package)."""
    # What importlib.util.find_spec does for a submodule, asking the finders on
    # sys.meta_path (an editable install maps the package elsewhere), without importing
    # importlib.util and contextlib in every launch.  Never imports the package.
    spec: ModuleSpec | None = None
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is not None:
            spec = find_spec("pyrospan_launch._bootstrap", pyrospan_launch.__path__)
            if spec is not None:
                break
    if spec is not None and spec.submodule_search_locations:
        return os.path.abspath(next(iter(spec.submodule_search_locations)))
    # The package was imported from a source tree that shadows the installed copy: a
    # directory holding a `pyrospan_launch/` folder came first on sys.path (the project's
    # checkout as the cwd, which opentelemetry-instrument adds to PYTHONPATH).  The
    # installed copy further down sys.path has the bootstrap; its sitecustomize imports
    # the package from its own copy in the child.
    for entry in sys.path:
        candidate = os.path.join(entry or os.curdir, "pyrospan_launch", "_bootstrap")
        if os.path.isfile(os.path.join(candidate, "sitecustomize.py")):
            return os.path.abspath(candidate)
    raise BootstrapMissing(
        f"no installed pyrospan-run found ({os.path.dirname(pyrospan_launch.__file__ or '')} "
        "has no bootstrap): reinstall it with pip install pyrospan-run"
    )


def restore_auto_instrumentation(environ: Mapping[str, str]) -> Mapping[str, str]:
    """``environ``, with opentelemetry-instrument's directory back on PYTHONPATH if it was taken.

    Releases of opentelemetry-instrument before 0.60b0 take their ``sitecustomize``
    directory off PYTHONPATH in the process they start, here the launcher, so the app
    it execs would never see it.  Put back, it reaches the app as with newer releases:
    the bootstrap then starts OpenTelemetry once (or leaves it to opentelemetry-instrument
    when pyrospan-run's tracing is off).
    """
    module = sys.modules.get("sitecustomize")
    where = os.path.dirname(os.path.abspath(getattr(module, "__file__", None) or os.curdir))
    tail = os.path.join("opentelemetry", "instrumentation", "auto_instrumentation")
    if not where.endswith(tail):
        return environ
    entries = (environ.get("PYTHONPATH") or "").split(os.pathsep)
    if any(same_dir(entry, where) for entry in entries):
        return environ
    return {**environ, "PYTHONPATH": os.pathsep.join(entry for entry in [where, *entries] if entry)}


def build(
    environ: Mapping[str, str],
    command: Sequence[str],
    overrides: Mapping[str, str],
    bootstrap: str,
) -> dict[str, str]:
    """The child's environment: ``environ`` plus ``overrides``, the bootstrap, a service name."""
    env = dict(environ)
    env.update(overrides)
    env["PYTHONPATH"] = python_path_with(bootstrap, env.get("PYTHONPATH"))
    name, _ = service_name_of(env)
    if name is None:
        # One name for traces and profiles, readable in Grafana instead of unknown_service.
        env[reads.SERVICE_NAME] = env[DERIVED_SERVICE_NAME] = derive_service_name(command)
    return env
