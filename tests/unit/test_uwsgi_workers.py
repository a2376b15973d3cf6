"""uWSGI's post-fork hook: CPython's after-fork step in workers forked from C; the app's kept."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
from collections.abc import Iterator

import pytest

from pyrospan_launch.agent import uwsgi_workers
from pyrospan_launch.agent.lifecycle import Lifecycle
from pyrospan_launch.agent.uwsgi_workers import UwsgiWorkers, in_uwsgi, threads_disabled

FORK_HOOKS = "py-call-uwsgi-fork-hooks"


@pytest.fixture
def no_uwsgi_module() -> Iterator[None]:
    saved = sys.modules.pop("uwsgi", None)
    yield
    sys.modules.pop("uwsgi", None)
    if saved is not None:
        sys.modules["uwsgi"] = saved


def missing(name: str) -> object:
    raise ImportError(name)


def test_uwsgi_told_by_its_program() -> None:
    assert in_uwsgi("/srv/venv/bin/uwsgi")
    assert in_uwsgi("/usr/bin/uwsgi-core")
    assert not in_uwsgi("/usr/bin/python3.12")


def test_before_uwsgi_adds_its_module_a_placeholder_holds_the_hook(no_uwsgi_module: None) -> None:
    workers = UwsgiWorkers(Lifecycle(), import_module=missing)
    assert workers.install()
    module = sys.modules["uwsgi"]
    assert callable(module.__dict__["post_fork_hook"])  # where uWSGI's C code reads it


def test_the_apps_hook_runs_after_ours_whenever_it_is_set(
    no_uwsgi_module: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(uwsgi_workers, "run_cpython_after_fork", lambda: calls.append("fork"))
    module = types.ModuleType("uwsgi")
    module.post_fork_hook = lambda: calls.append("set before")  # type: ignore[attr-defined]
    lifecycle = Lifecycle()
    UwsgiWorkers(lifecycle, import_module=lambda name: module).install()
    monkeypatch.setattr(os, "getpid", lambda: -1)  # a worker: the fork hooks did not run
    module.post_fork_hook()
    assert calls == ["fork", "set before"]
    # uwsgidecorators sets its chain on import, after ours: it runs after ours too.
    module.post_fork_hook = lambda: calls.append("set after")  # type: ignore[attr-defined]
    module.post_fork_hook()
    assert calls[2:] == ["fork", "set after"]


def test_no_second_after_fork_step_when_uwsgi_ran_it(
    no_uwsgi_module: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --py-call-osafterfork (or a fork by os.fork): the hooks ran, in this very process.
    calls: list[str] = []
    monkeypatch.setattr(uwsgi_workers, "run_cpython_after_fork", lambda: calls.append("fork"))
    module = types.ModuleType("uwsgi")
    UwsgiWorkers(Lifecycle(), import_module=lambda name: module).install()
    module.post_fork_hook()
    assert calls == []


@pytest.mark.parametrize(
    ("version", "options", "disabled"),
    [
        ((2, 0, 26, 0, ""), {}, True),
        ((2, 0, 26, 0, ""), {"enable-threads": True}, False),
        ((2, 0, 26, 0, ""), {"threads": b"4"}, False),
        ((2, 0, 26, 0, ""), {"enable-threads": b"false"}, True),
        ((2, 0, 27, 0, ""), {}, False),
    ],
)
def test_threads_disabled_before_2_0_27_without_a_thread_flag(
    version: tuple[object, ...], options: dict[str, object], disabled: bool
) -> None:
    module = types.SimpleNamespace(version_info=version, opt=options)
    assert threads_disabled(module) is disabled


def run_worker_hook(
    options: dict[str, object],
    version: tuple[object, ...] = (2, 0, 31, 0, ""),
    times: int = 1,
    **functions: object,
) -> None:
    """A worker of a fake uWSGI with ``uwsgi.opt`` = ``options`` runs its post-fork hook."""
    module = types.ModuleType("uwsgi")
    module.version_info = version  # type: ignore[attr-defined]
    module.opt = options  # type: ignore[attr-defined]
    for name, function in functions.items():
        setattr(module, name, function)
    UwsgiWorkers(Lifecycle(), import_module=lambda name: module).install()
    for _ in range(times):
        module.post_fork_hook()


def test_a_worker_without_threads_says_which_flag_to_add(
    no_uwsgi_module: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(uwsgi_workers, "run_cpython_after_fork", lambda: None)
    run_worker_hook({}, (2, 0, 21, 0, ""), times=2, worker_id=lambda: 1)
    err = capsys.readouterr().err
    assert err.count("pyrospan: ") == 1
    assert "add --enable-threads" in err


@pytest.mark.parametrize(("options", "warned"), [({}, True), ({FORK_HOOKS: True}, False)])
def test_a_worker_forked_without_python_fork_hooks_names_the_flag(
    no_uwsgi_module: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    options: dict[str, object],
    warned: bool,
) -> None:
    monkeypatch.setattr(uwsgi_workers, "run_cpython_after_fork", lambda: None)
    run_worker_hook(options)
    err = capsys.readouterr().err
    assert ("add --py-call-uwsgi-fork-hooks" in err) is warned
    assert err.count("pyrospan: ") == int(warned)


@pytest.mark.parametrize("options", [{"mules": b"1"}, {"mule": True}, {"farm": b"jobs:1"}])
def test_with_mules_the_line_says_why_the_fork_hooks_are_off(
    no_uwsgi_module: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    options: dict[str, object],
) -> None:
    # The flag would crash the mules: the line does not ask for it.
    monkeypatch.setattr(uwsgi_workers, "run_cpython_after_fork", lambda: None)
    run_worker_hook(options, worker_id=lambda: 1)
    err = capsys.readouterr().err
    assert err.count("pyrospan: ") == 1
    assert "as its mules crash under --py-call-uwsgi-fork-hooks" in err
    assert "add --py-call-uwsgi-fork-hooks" not in err


def test_mules_under_the_fork_hooks_flag_are_named_with_what_to_set(
    no_uwsgi_module: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(uwsgi_workers, "run_cpython_after_fork", lambda: None)
    run_worker_hook({"mules": b"2", FORK_HOOKS: True}, worker_id=lambda: 1)
    err = capsys.readouterr().err
    assert err.count("pyrospan: ") == 1
    assert "crashes its mules under --py-call-uwsgi-fork-hooks" in err
    assert "UWSGI_PY_CALL_UWSGI_FORK_HOOKS=false" in err


def test_a_mule_or_the_spooler_leaves_the_line_to_the_first_worker(
    no_uwsgi_module: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(uwsgi_workers, "run_cpython_after_fork", lambda: None)
    for mule, spooler in ((1, False), (0, True)):
        run_worker_hook(
            {"mules": b"1"},
            worker_id=lambda: 0,
            mule_id=lambda mule=mule: mule,
            i_am_the_spooler=lambda spooler=spooler: spooler,
        )
    assert "pyrospan: " not in capsys.readouterr().err


# A child forked from C, as uWSGI forks its workers: no PyOS_BeforeFork in the parent, so
# the import lock is free at the fork (or held, when a thread of the parent held it then).
FORKED_FROM_C = textwrap.dedent(
    """
    import _imp, ctypes, os, sys
    from pyrospan_launch.agent.uwsgi_workers import run_cpython_after_fork
    os.register_at_fork(after_in_child=lambda: print("after fork in child", flush=True))
    if sys.argv[1] == "held":
        _imp.acquire_lock()
    pid = ctypes.CDLL(None).fork()
    if pid == 0:
        run_cpython_after_fork()
        print("import lock held:", _imp.lock_held(), flush=True)
        import json  # noqa: F401
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))
    """
)


@pytest.mark.parametrize("import_lock", ["free", "held"])
def test_the_after_fork_step_runs_in_a_child_forked_from_c(import_lock: str) -> None:
    # From Python 3.13 the step gives back an import lock it expects os.fork() to have
    # taken: called alone it aborts the child ("unlocking ... mutex that is not ...").
    result = subprocess.run(
        [sys.executable, "-c", FORKED_FROM_C, import_lock],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["after fork in child", "import lock held: False"]
