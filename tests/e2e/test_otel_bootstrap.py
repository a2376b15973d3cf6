"""End to end: pyrospan-run and the instrumentations install next to the set in use.

pyrospan-run goes into the app's environment.  A plain `pip install pyrospan-run` into
an app that has the SDK, the OTLP/HTTP exporter and an instrumentation must change none
of its OpenTelemetry packages; with the app's packages held (the README's `-c`) pip must
resolve it, web extra included, changing none of them.  The README's one-line install of
the app's instrumentations pipes `opentelemetry-bootstrap -a requirements` into pip:
every line must resolve next to the installed set too.  `make test-otel` runs these at
both ends of the supported range.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import clean_env, run

pytestmark = [pytest.mark.e2e, pytest.mark.otel]

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def installed_opentelemetry() -> dict[str, str]:
    """Name -> version of every opentelemetry package in this environment."""
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        entry["name"].lower(): entry["version"]
        for entry in json.loads(listing)
        if entry["name"].lower().startswith("opentelemetry")
    }


def pip_would_install(tmp_path: Path, *arguments: str) -> dict[str, str]:
    """Name -> version of what ``pip install --dry-run <arguments>`` would install here."""
    report = tmp_path / "report.json"
    resolved = run(
        [
            *(sys.executable, "-m", "pip", "install", "--dry-run", "--quiet"),
            *("--report", str(report), *arguments),
        ],
        clean_env(),
        timeout=300,
    )
    assert resolved.returncode == 0, resolved.stderr
    return {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }


def test_bootstrap_requirements_install_next_to_the_set_in_use(tmp_path: Path) -> None:
    listed = run([str(BIN / "opentelemetry-bootstrap"), "-a", "requirements"], clean_env())
    assert listed.returncode == 0, listed.stderr
    requirements = listed.stdout.split()
    instrumentation = installed_opentelemetry()["opentelemetry-instrumentation"]
    # The instrumentations of this environment's libraries (Flask, Django, ...), each of
    # the installed instrumentation release.
    assert "opentelemetry-instrumentation-flask==" + instrumentation in requirements
    assert all(line.endswith("==" + instrumentation) for line in requirements), requirements

    before = installed_opentelemetry()
    (tmp_path / "requirements.txt").write_text("\n".join(requirements) + "\n")
    chosen = pip_would_install(tmp_path, "-r", str(tmp_path / "requirements.txt"))
    # Only instrumentations are added; no OpenTelemetry package already there changes.
    changed = {name: version for name, version in chosen.items() if name in before}
    assert changed == {}
    missing = [line.split("==")[0] for line in requirements]
    added = {name: chosen[name] for name in missing if name not in before}
    assert added and set(added.values()) == {instrumentation}, added


def test_pyrospan_run_resolves_next_to_the_apps_set_unchanged(tmp_path: Path) -> None:
    before = installed_opentelemetry()
    held = tmp_path / "otel-constraints.txt"
    held.write_text("".join(f"{name}=={version}\n" for name, version in before.items()))
    chosen = pip_would_install(tmp_path, "--ignore-installed", "-c", str(held), f"{ROOT}[web]")
    otel = {name: version for name, version in chosen.items() if name.startswith("opentelemetry")}
    # --ignore-installed makes pip choose every package again: the held set is what it chose.
    assert otel == {name: version for name, version in before.items() if name in otel}
    assert {"opentelemetry-sdk", "opentelemetry-instrumentation"} <= set(otel)
    assert "opentelemetry-distro" not in otel


def test_plain_pip_install_changes_none_of_the_apps_opentelemetry(tmp_path: Path) -> None:
    # This environment is an app with the SDK, the OTLP/HTTP exporter and instrumentations
    # of one release and no distro (make install removes it).  A plain `pip install
    # pyrospan-run`, no -c, keeps what is installed when it satisfies the ranges; a
    # dependency the app lacks would come at its newest release and pull the rest up.
    before = installed_opentelemetry()
    assert "opentelemetry-distro" not in before
    chosen = pip_would_install(tmp_path, str(ROOT))
    assert "pyrospan-run" in chosen  # it was resolved, not found installed and skipped
    assert {name: v for name, v in chosen.items() if name.startswith("opentelemetry")} == {}
