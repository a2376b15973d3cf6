"""Run a function right after a module is first imported, before the importing code gets it.

This is how pyrospan-run defers work to the moment the app needs it: OpenTelemetry starts
on the first import of an instrumented library, asyncio is patched when asyncio loads.
wrapt offers the same (and OpenTelemetry uses it once it runs), but importing wrapt
imports asyncio, and paying for both in every process at start-up, even one that never
uses them, is what this module exists to avoid.

A meta-path finder recognises a watched module, asks the finders after it for the spec,
and wraps the loader so that the hooks run once the module's code has run.  The module's
loader attributes are put back afterwards, so nothing of this stays visible.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType

# For type checkers only: importlib.abc costs as much as this whole module at start-up,
# typing several times that.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from importlib.abc import Loader
    from importlib.machinery import ModuleSpec
    from typing import Any

Hook = Callable[[ModuleType], None]

_hooks: dict[str, list[Hook]] = {}
_lock = threading.RLock()
# Watched modules whose code is running now: a hook added meanwhile waits for the end.
_running: set[str] = set()


def when_imported(name: str, hook: Hook) -> None:
    """Call ``hook(module)`` after ``name`` is imported; at once if it already is.

    A module that is being imported (in ``sys.modules``, its code still running, e.g. a
    library whose ``__init__`` imports something that starts OpenTelemetry) is not
    imported yet: the hook runs when its code is done.
    """
    with _lock:
        module = sys.modules.get(name)
        if module is None or name in _running:
            _hooks.setdefault(name, []).append(hook)
            _install_finder()
            return
    hook(module)


def _run_hooks(module: ModuleType) -> None:
    with _lock:
        hooks = _hooks.pop(module.__name__, [])
    for hook in hooks:
        hook(module)


class _HookedLoader:
    """The real loader, then the hooks."""

    def __init__(self, loader: Loader) -> None:
        self._loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # Put the real loader back first: code that inspects it (resources, reloads)
        # must never meet this wrapper.
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        with _lock:
            _running.add(module.__name__)
        try:
            self._loader.exec_module(module)
        finally:
            with _lock:
                _running.discard(module.__name__)
        _run_hooks(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _Finder:
    """Finds nothing itself; wraps the loader of a watched module that others find."""

    def __init__(self) -> None:
        self._searching = threading.local()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in _hooks or getattr(self._searching, "name", None) == fullname:
            return None
        self._searching.name = fullname
        try:
            spec = _find_with_the_others(self, fullname, path, target)
        finally:
            self._searching.name = None
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _HookedLoader(spec.loader)  # type: ignore[assignment]
        return spec


def _find_with_the_others(
    finder: _Finder, fullname: str, path: Sequence[str] | None, target: ModuleType | None
) -> ModuleSpec | None:
    for other in list(sys.meta_path):
        if other is finder:
            continue
        find = getattr(other, "find_spec", None)
        if find is None:
            continue
        spec = find(fullname, path, target)
        if spec is not None:
            return spec  # type: ignore[no-any-return]
    return None


_finder: _Finder | None = None


def _install_finder() -> None:
    global _finder
    if _finder is None:
        _finder = _Finder()
        sys.meta_path.insert(0, _finder)
