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


class ImportHooks:
    """The hooks waiting for modules, and the finder that runs them; the agent holds one."""

    def __init__(self) -> None:
        self._hooks: dict[str, list[Hook]] = {}
        self._lock = threading.RLock()
        # Watched modules whose code is running now: a hook added meanwhile waits.
        self._running: set[str] = set()
        # Hooks waiting for a module that was importing when they were added to finish.
        self._after: list[tuple[str, Hook]] = []
        self._finder: _Finder | None = None

    def when_imported(self, name: str, hook: Hook) -> None:
        """Call ``hook(module)`` after ``name`` is imported; at once if it already is.

        A module that is being imported (in ``sys.modules``, its code still running, e.g.
        a library whose ``__init__`` imports something that starts OpenTelemetry) is not
        imported yet: the hook runs when its code is done.
        """
        with self._lock:
            module = sys.modules.get(name)
            if module is None or name in self._running:
                self._hooks.setdefault(name, []).append(hook)
                if self._finder is None:
                    self._finder = _Finder(self)
                    sys.meta_path.insert(0, self._finder)
                return
        hook(module)

    def when_done_importing(self, name: str, hook: Hook) -> None:
        """Call ``hook(module)`` once ``name``, importing now, has finished.

        Its loader cannot be wrapped any more: the check runs at the app's next import
        of a module not loaded yet (the finder sees every one), or at once if it is done.
        """
        with self._lock:
            self._after.append((name, hook))
            if self._finder is None:
                self._finder = _Finder(self)
                sys.meta_path.insert(0, self._finder)
        self.run_finished()

    def run_finished(self) -> None:
        """Run the hooks of :meth:`when_done_importing` whose module has finished."""
        if not self._after:
            return
        with self._lock:
            ready = [(n, h) for n, h in self._after if not is_importing(sys.modules.get(n))]
            if not ready:
                return
            self._after = [entry for entry in self._after if entry not in ready]
        for name, hook in ready:
            module = sys.modules.get(name)
            if module is not None:
                hook(module)

    def uninstall(self) -> None:
        """Take the finder off ``sys.meta_path`` and forget the hooks (tests)."""
        with self._lock:
            if self._finder in sys.meta_path:
                sys.meta_path.remove(self._finder)
            self._finder = None
            self._hooks.clear()
            self._after.clear()

    def watches(self, name: str) -> bool:
        """True while a hook waits for ``name``."""
        return name in self._hooks

    def running(self, name: str, now: bool) -> None:
        """Record that ``name``'s code started (``now``) or finished running."""
        with self._lock:
            if now:
                self._running.add(name)
            else:
                self._running.discard(name)

    def run_hooks(self, module: ModuleType) -> None:
        """Run, once, the hooks waiting for ``module``."""
        with self._lock:
            hooks = self._hooks.pop(module.__name__, [])
        for hook in hooks:
            hook(module)


class _HookedLoader:
    """The real loader, then the hooks."""

    def __init__(self, loader: Loader, hooks: ImportHooks) -> None:
        self._loader = loader
        self._import_hooks = hooks

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # Put the real loader back first: code that inspects it (resources, reloads)
        # must never meet this wrapper.
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._import_hooks.running(module.__name__, True)
        try:
            self._loader.exec_module(module)
        finally:
            self._import_hooks.running(module.__name__, False)
        self._import_hooks.run_hooks(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _Finder:
    """Finds nothing itself; wraps the loader of a watched module that others find."""

    def __init__(self, hooks: ImportHooks) -> None:
        self._import_hooks = hooks
        self._searching = threading.local()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        self._import_hooks.run_finished()
        if (
            not self._import_hooks.watches(fullname)
            or getattr(self._searching, "name", None) == fullname
        ):
            return None
        self._searching.name = fullname
        try:
            spec = _find_with_the_others(self, fullname, path, target)
        finally:
            self._searching.name = None
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _HookedLoader(spec.loader, self._import_hooks)  # type: ignore[assignment]
        return spec


def is_importing(module: ModuleType | None) -> bool:
    """True while ``module``'s code runs (its import has not finished)."""
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


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
