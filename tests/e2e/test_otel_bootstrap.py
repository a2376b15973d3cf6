"""End to end: pyrospan-run and the instrumentations install next to the set in use.

pyrospan-run goes into the app's environment: with the app's OpenTelemetry packages
held (the README's `-c`), pip must resolve it, web extra included, changing none of
them.  The README's one-line install of the app's instrumentations pipes
`opentelemetry-bootstrap -a requirements` into pip: every line must resolve next to the
installed set too.  `make test-otel` runs these at both ends of the supported range.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import clean_env, run

pytestmark = pytest.mark.e2e

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
    report = tmp_path / "report.json"
    resolved = run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--report",
            str(report),
            "-r",
            str(tmp_path / "requirements.txt"),
        ],
        clean_env(),
        timeout=300,
    )
    assert resolved.returncode == 0, resolved.stderr
    chosen = {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
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
    report = tmp_path / "report.json"
    resolved = run(
        [
            *(sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed"),
            *("--report", str(report), "-c", str(held), f"{ROOT}[web]"),
        ],
        clean_env(),
        timeout=300,
    )
    assert resolved.returncode == 0, resolved.stderr
    chosen = {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    otel = {name: version for name, version in chosen.items() if name.startswith("opentelemetry")}
    # --ignore-installed makes pip choose every package again: the held set is what it chose.
    assert otel == {name: version for name, version in before.items() if name in otel}
    assert {"opentelemetry-sdk", "opentelemetry-distro", "opentelemetry-instrumentation"} <= set(
        otel
    )
