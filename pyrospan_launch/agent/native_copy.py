"""A fresh copy of pyroscope-io's native module, for a forked child that needs the Stack sampler.

With per-thread CPU timers (CPython 3.12+), pyroscope-io's Stack sampler cannot start
again in a process where it once ran: ``configure()`` returns False after
``shutdown()`` and in a forked child, whose native module still holds the parent's
state.  The dynamic loader keeps one instance of a library per file, so the child loads
a byte-for-byte copy of ``_native`` from a file of its own, which starts with no state,
and points the ``pyroscope`` package at it.  The copy is unlinked as soon as it is
loaded: its mapping lives on, and nothing is left in the temporary directory.

Measured on the 2-core machine: copying the 15 MB library takes about 5 ms and loading
it 2 ms, once per forked worker (docs/design.md, "The sampler").
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

NATIVE = "pyroscope._native"


def original_path() -> str:
    """The file pyroscope-io's native module was first loaded from."""
    import pyroscope

    path = getattr(pyroscope._native, "__file__", None)
    if not path:
        raise RuntimeError("pyroscope-io's native module has no file")
    return str(path)


def load_fresh(path: str) -> ModuleType:
    """A new instance of the extension module at ``path``, loaded from a private copy."""
    # Loaded here, in the one child that needs them: not at every process's start-up.
    import importlib.util
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="pyrospan-native-")
    copy = os.path.join(directory, os.path.basename(path))
    try:
        shutil.copyfile(path, copy)
        spec = importlib.util.spec_from_file_location(NATIVE, copy)
        if spec is None or spec.loader is None:
            raise RuntimeError(f"cannot load {copy}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return module


def adopt(native: ModuleType) -> None:
    """Make ``native`` the module behind every ``pyroscope`` function from now on.

    ``configure()``'s defaults are members of the old module's enums, which the new
    module refuses ("not an instance of 'ProfilerImplementation'"): they are swapped for
    the new module's members of the same name, so the app's own call still works.
    """
    import pyroscope

    function = pyroscope.configure
    while True:  # the original under pyrospan's wrapper (agent/app_profiler)
        _refresh_defaults(function, native)
        wrapped = getattr(function, "__wrapped__", None)
        if wrapped is None:
            break
        function = wrapped
    pyroscope.lib = native  # configure(), tag_wrapper() and the rest call through it
    pyroscope._native = native
    pyroscope.ProfilerImplementation = native.ProfilerImplementation
    pyroscope.LineNo = native.LineNo
    sys.modules[NATIVE] = native


def _refresh_defaults(function: object, native: ModuleType) -> None:
    defaults = getattr(function, "__defaults__", None)
    if not defaults:
        return
    fresh = tuple(_same_member(value, native) for value in defaults)
    if fresh != defaults:
        function.__defaults__ = fresh  # type: ignore[attr-defined]


def _same_member(value: object, native: ModuleType) -> object:
    """``value``'s namesake in ``native`` when it is a member of one of its enums."""
    kind = type(value).__name__
    if kind not in ("LineNo", "ProfilerImplementation"):
        return value
    name = str(value).rpartition(".")[2]
    return getattr(getattr(native, kind), name, value)
