"""The README and the bundled example stay true: every setting documented, the demo links spans."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest
from conftest import clean_env, run

from pyrospan_launch import settings

ROOT = Path(__file__).resolve().parent.parent


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [s.name for s in settings.ALL if f"`{s.name}`" not in readme]
    assert missing == []


@pytest.mark.e2e
def test_wheel_ships_bootstrap_inside_the_package_only(tmp_path: Path) -> None:
    # Installed as a top-level `sitecustomize`, the bootstrap would instrument every Python
    # process of the environment; it must ship only inside the package.
    build = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        clean_env(),
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("pyrospan_run-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "pyrospan_launch/_bootstrap/sitecustomize.py" in names
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"pyrospan_launch", wheel.name.split("-")[0] + "-0.1.0.dist-info"}


@pytest.mark.e2e
def test_demo_links_each_request_to_its_own_hot_function() -> None:
    result = run([sys.executable, str(ROOT / "examples" / "demo.py")], clean_env(), timeout=90)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("POST ")]
    assert len(rows) == 6
    for row in rows:
        name, profile_id, cpu_ms, hottest = " ".join(row[:2]), row[2], int(row[3]), row[4]
        assert len(profile_id) == 16 and int(profile_id, 16)
        assert cpu_ms > 0
        assert hottest == {"POST /checkout": "price_cart", "POST /login": "hash_password"}[name]
