"""End to end: pyrospan-run adds nothing to the app's import path, and imports nothing planted.

The bootstrap directory is the only thing the launcher puts on PYTHONPATH, and the
bootstrap takes it off ``sys.path`` again: the program's ``sys.path`` is plain python's for
every way of starting it (script, ``-m``, ``-c``, ``-P``, ``-E``, ``-s``, ``-I``) and every
shape of PYTHONPATH (unset, entries, empty entries, which mean the current directory).
A ``sitecustomize.py`` and modules planted in the current directory are imported under
pyrospan-run only when plain python imports them too.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from helpers import PYROSPAN_RUN, backend_env, clean_env, run
from recording_receiver import RecordingReceiver

from pyrospan_launch.launcher.child_env import bootstrap_dir

pytestmark = pytest.mark.e2e

PY = sys.executable
SHOW_PATH = "import sys; print(repr(sys.path))"


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A directory with a script and a package, away from the current directory."""
    app = tmp_path / "app"
    (app / "pkg").mkdir(parents=True)
    (app / "show_path.py").write_text(SHOW_PATH + "\n")
    (app / "pkg" / "__init__.py").write_text("")
    (app / "pkg" / "__main__.py").write_text(SHOW_PATH + "\n")
    return app


INVOCATIONS = {
    "script": lambda app: [str(app / "show_path.py")],
    "module": lambda app: ["-m", "pkg"],
    "command": lambda app: ["-c", SHOW_PATH],
    "ignore-environment": lambda app: ["-E", "-c", SHOW_PATH],
    "no-user-site": lambda app: ["-s", str(app / "show_path.py")],
    "isolated": lambda app: ["-I", str(app / "show_path.py")],
}
if sys.version_info >= (3, 11):  # -P (no script or current directory first) is new in 3.11
    INVOCATIONS["safe-path"] = lambda app: ["-P", "-c", SHOW_PATH]
PYTHONPATHS = {
    "unset": None,
    "entries": "/user/a:/user/b",
    "leading-empty-entry": ":/user/a",
    "trailing-empty-entry": "/user/a:",
    "empty": "",
}


@pytest.mark.parametrize("pythonpath", sorted(PYTHONPATHS))
@pytest.mark.parametrize("invocation", sorted(INVOCATIONS))
def test_sys_path_is_plain_pythons(
    receiver: RecordingReceiver, app_dir: Path, invocation: str, pythonpath: str
) -> None:
    args = INVOCATIONS[invocation](app_dir)
    user = PYTHONPATHS[pythonpath]
    extra = {} if user is None else {"PYTHONPATH": user}
    plain = run([PY, *args], clean_env(**extra), cwd=app_dir)
    launched = run([PYROSPAN_RUN, PY, *args], backend_env(receiver, **extra), cwd=app_dir)
    assert plain.returncode == launched.returncode == 0, launched.stderr
    assert launched.stdout == plain.stdout
    assert bootstrap_dir() not in launched.stdout
    assert launched.stderr == plain.stderr == ""


PLANTED = ("sitecustomize", "plantedmod", "logging")


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A current directory holding a sitecustomize and two modules that log their import."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    for name in PLANTED:
        (cwd / f"{name}.py").write_text(
            "import os\n"
            f"with open(os.environ['PLANTED_LOG'], 'a') as f: f.write({name!r} + '\\n')\n"
        )
    return cwd


def imported(log: Path) -> set[str]:
    return set(log.read_text().split()) if log.exists() else set()


CASES = {
    # A script elsewhere: the current directory is not on its path.
    "script": (["{script}"], None),
    # -c puts the current directory first: the app's own imports find what is there.
    "command": (["-c", "import plantedmod"], None),
    "command-importing-logging": (["-c", "import plantedmod, logging"], None),
    "module": (["-m", "plantedmod"], None),
    # An empty PYTHONPATH entry is the current directory while Python starts up.
    "empty-pythonpath-entry": (["-c", "pass"], ":"),
    "isolated": (["-I", "-c", "pass"], None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_planted_modules_imported_only_when_plain_python_imports_them(
    receiver: RecordingReceiver, planted: Path, tmp_path: Path, case: str
) -> None:
    script = tmp_path / "elsewhere" / "app.py"
    script.parent.mkdir()
    script.write_text("print('app ran')\n")
    args = [arg.format(script=script) for arg in CASES[case][0]]
    pythonpath = CASES[case][1]
    extra = {} if pythonpath is None else {"PYTHONPATH": pythonpath}
    seen = {}
    for name, prefix, env in (
        ("plain", [], clean_env(**extra)),
        ("launched", [PYROSPAN_RUN], backend_env(receiver, **extra)),
    ):
        log = tmp_path / f"{name}.log"
        result = run([*prefix, PY, *args], {**env, "PLANTED_LOG": str(log)}, cwd=planted)
        assert result.returncode == 0, (name, result.stderr)
        seen[name] = imported(log)
    # Never one that plain python would not import: that would run planted code.
    assert seen["launched"] <= seen["plain"], seen
    # The user's sitecustomize and a module of their own: exactly as plain python.
    for name in ("sitecustomize", "plantedmod"):
        assert (name in seen["launched"]) == (name in seen["plain"]), (name, seen)
    if case in ("script", "isolated"):
        assert seen["plain"] == set()
    if case == "empty-pythonpath-entry":
        assert "sitecustomize" in seen["plain"]


def test_the_launcher_puts_only_its_bootstrap_directory_ahead(receiver: RecordingReceiver) -> None:
    code = "import os, json; print(json.dumps(os.environ.get('PYTHONPATH')))"
    env = backend_env(receiver, PYTHONPATH="/user/a::/user/b", PYROSPAN_CHILDREN="true")
    result = run([PYROSPAN_RUN, PY, "-c", code], env)
    assert result.returncode == 0, result.stderr
    # What the app's own children inherit: the bootstrap directory, then the user's
    # entries untouched (the empty one included), nothing else.
    assert json.loads(result.stdout) == os.pathsep.join([bootstrap_dir(), "/user/a", "", "/user/b"])
