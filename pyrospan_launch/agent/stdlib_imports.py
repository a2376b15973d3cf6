"""While the bootstrap starts, standard-library names come from the standard library only.

PYTHONPATH entries come before the standard library on ``sys.path``, and an empty entry
means the current directory.  The bootstrap imports standard modules the app may never
import (``logging``, ``json``, ``socket``...), so a file of the same name in such a
directory (a project's ``calendar.py`` with ``PYTHONPATH=.``, or a file planted in the
current directory) would run at start-up under pyrospan-run when plain python would
never import it, and could break the bootstrap.  Within :class:`only_stdlib`, a
top-level standard-library name is looked up in the interpreter's own library
directories; every other name (pyroscope, OpenTelemetry, the app's packages) is found as
usual, so a package the user puts first on PYTHONPATH still wins.

This module itself imports nothing that Python has not loaded before ``sitecustomize``
(the import machinery is taken from ``sys.modules``), so it cannot be shadowed either.
"""

from __future__ import annotations

import os
import sys

# Not typing.TYPE_CHECKING: typing is not loaded yet when this runs (see above).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType, TracebackType
    from typing import Any

# The import system's own classes, loaded before anything else (importlib.machinery is
# a module of the standard library like any other, and would be looked up on sys.path).
_bootstrap: Any = sys.modules["_frozen_importlib"]
_external: Any = sys.modules["_frozen_importlib_external"]

_THIRD_PARTY = ("site-packages", "dist-packages")


def stdlib_dirs() -> list[str]:
    """The ``sys.path`` entries that hold the standard library (zip, lib, lib-dynload)."""
    library = os.path.dirname(os.path.abspath(os.__file__))
    root = os.path.dirname(library)
    found = []
    for entry in sys.path:
        if not entry:
            continue
        path = os.path.abspath(entry)
        inside = path == library or path.startswith(library + os.sep)
        zipped = os.path.dirname(path) == root and path.endswith(".zip")
        if (inside or zipped) and not any(part in path for part in _THIRD_PARTY):
            found.append(entry)
    return found


class _StdlibFinder:
    """Finds top-level standard-library modules in the standard library's directories."""

    def __init__(self, directories: list[str]) -> None:
        self._directories = directories

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if "." in fullname or fullname not in sys.stdlib_module_names:
            return None
        if _bootstrap.BuiltinImporter.find_spec(fullname) or _bootstrap.FrozenImporter.find_spec(
            fullname
        ):
            return None  # the interpreter's own copy, which the next finders return anyway
        spec: ModuleSpec | None = _external.PathFinder.find_spec(fullname, self._directories)
        return spec


class only_stdlib:  # a context manager, named like one
    """``with only_stdlib():`` imports standard-library modules from the standard library only."""

    def __init__(self) -> None:
        directories = stdlib_dirs()
        # An embedded or unusual layout without them: leave imports alone.
        self._finder = _StdlibFinder(directories) if directories else None

    def __enter__(self) -> None:
        if self._finder is not None:
            sys.meta_path.insert(0, self._finder)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._finder is not None and self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)
