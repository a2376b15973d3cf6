"""The README and the bundled example stay true: every setting documented, demo in local mode."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest
from helpers import clean_env, run

from pyrospan_launch.settings import registry

ROOT = Path(__file__).resolve().parents[2]


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [s.name for s in registry.ALL if f"`{s.name}`" not in readme]
    assert missing == []


@pytest.mark.e2e
def test_wheel_ships_bootstrap_inside_the_package_only(tmp_path: Path) -> None:
    # Installed as a top-level `sitecustomize`, the bootstrap would instrument every Python
    # process of the environment; it must ship only inside the package.
    build = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), str(ROOT)],
        clean_env(),
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    # `pip install` is silent: the build backend (whose output -v shows) warns of nothing.
    backend_warnings = [
        line for line in (build.stdout + build.stderr).splitlines() if "Warning:" in line
    ]
    assert backend_warnings == []
    (wheel,) = tmp_path.glob("pyrospan_run-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "pyrospan_launch/_bootstrap/sitecustomize.py" in names
    # Local mode's page inlines these: they must ship, or --local fails after pip install.
    for asset in ("page.html", "app.js", "app.css"):
        assert f"pyrospan_launch/local/assets/{asset}" in names
    # Every module of the source tree ships: a sub-package missing from pyproject's list
    # installs a copy that fails at its first import of it.
    source = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "pyrospan_launch").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert source - set(names) == set()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"pyrospan_launch", wheel.name.split("-")[0] + "-0.1.0.dist-info"}


def test_first_command_is_local_mode_on_the_bundled_shop() -> None:
    # The newcomer's first command needs no backend; tests/test_local_e2e.py runs it.
    readme = (ROOT / "README.md").read_text()
    try_it = readme.split("## Try it", 1)[1]
    first_block = try_it.split("```sh\n", 1)[1].split("```", 1)[0]
    assert first_block.splitlines()[0].startswith("make demo ")
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ndemo:", 1)[1].splitlines()[1].strip()
    assert recipe == "$(BIN)/pyrospan-run --local python examples/shop.py"
    assert "pyrospan-run --local python examples/shop.py" in try_it
    assert (ROOT / "examples" / "shop.py").is_file()
