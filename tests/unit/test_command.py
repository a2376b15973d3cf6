"""Unit tests of the launcher's command lookup, against the standard library's own."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from pyrospan_launch.launcher import command


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    """Directories holding a ``tool`` that is executable, not executable, or a directory."""
    layout = {name: tmp_path / name for name in ("exe", "plain", "isdir", "empty", "exe2")}
    for directory in layout.values():
        directory.mkdir()
    for name in ("exe", "exe2"):
        tool = layout[name] / "tool"
        tool.write_text("#!/bin/sh\n")
        tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    (layout["plain"] / "tool").write_text("not executable\n")
    (layout["isdir"] / "tool").mkdir()
    return layout


PATH_SHAPES = [
    ["exe"],
    ["plain", "exe"],
    ["isdir", "exe2", "exe"],
    ["empty", "plain", "isdir"],
    ["exe", "exe"],
    ["empty", "", "exe2"],
    [""],
    [],
]


@pytest.mark.parametrize("shape", PATH_SHAPES, ids=lambda shape: ":".join(shape) or "(empty)")
def test_which_finds_what_shutil_finds(
    dirs: dict[str, Path], shape: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(dirs["empty"])
    path = os.pathsep.join(str(dirs[name]) if name else "" for name in shape)
    assert command.which("tool", path) == shutil.which("tool", path=path)


@pytest.mark.parametrize(
    ("name", "is_python"),
    [
        ("python", True),
        ("python3", True),
        ("python3.12", True),
        ("python3.", False),
        ("python.3", False),
        ("python3.12.1", False),
        ("pythonw", False),
        ("ipython", False),
        ("python3x", False),
    ],
)
def test_python_names(name: str, is_python: bool) -> None:
    assert command._is_python_name(name) is is_python
