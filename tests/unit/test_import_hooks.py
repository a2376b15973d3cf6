"""Post-import hooks: run once, after the module's code, before the importer gets it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from pyrospan_launch.agent.import_hooks import ImportHooks


@pytest.fixture
def hooks() -> Iterator[ImportHooks]:
    """Hooks of the test's own, their finder taken off sys.meta_path after."""
    own = ImportHooks()
    yield own
    own.uninstall()


@pytest.fixture
def package_dir(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))  # restored by conftest's process-state fixture
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith("pyrospan_probe_")]:
        del sys.modules[name]


def test_hook_runs_after_the_module_code_and_before_the_importer_sees_it(
    package_dir: Path, hooks: ImportHooks
) -> None:
    (package_dir / "pyrospan_probe_a.py").write_text("VALUE = 1\n")
    seen: list[object] = []

    def hook(module: ModuleType) -> None:
        seen.append(module.VALUE)
        # What the importing code must get (ModuleType types no attribute of the module's code).
        module.VALUE = 2  # type: ignore[attr-defined]

    hooks.when_imported("pyrospan_probe_a", hook)
    assert seen == []
    import pyrospan_probe_a  # type: ignore[import-not-found]

    assert seen == [1]
    assert pyrospan_probe_a.VALUE == 2
    # The real loader is back: nothing of the hook stays visible.
    assert type(pyrospan_probe_a.__loader__).__name__ != "_HookedLoader"


def test_uninstall_takes_the_finder_away(package_dir: Path) -> None:
    (package_dir / "pyrospan_probe_c.py").write_text("")
    own = ImportHooks()
    seen: list[str] = []
    own.when_imported("pyrospan_probe_c", lambda module: seen.append(module.__name__))
    own.uninstall()
    import pyrospan_probe_c  # type: ignore[import-not-found]  # noqa: F401

    assert seen == []


def test_hook_on_a_module_already_imported_runs_at_once(hooks: ImportHooks) -> None:
    seen: list[str] = []
    hooks.when_imported("json", lambda module: seen.append(module.__name__))
    assert seen == ["json"]


def test_each_hook_runs_once(package_dir: Path, hooks: ImportHooks) -> None:
    (package_dir / "pyrospan_probe_b.py").write_text("")
    calls: list[str] = []
    hooks.when_imported("pyrospan_probe_b", lambda module: calls.append("first"))
    hooks.when_imported("pyrospan_probe_b", lambda module: calls.append("second"))
    import pyrospan_probe_b  # type: ignore[import-not-found]

    del sys.modules["pyrospan_probe_b"]
    import pyrospan_probe_b  # noqa: F401, F811

    assert calls == ["first", "second"]
