"""Start-up cost: the launcher and the bootstrap leave costly modules unimported.

Every container start pays for what ``pyrospan-run COMMAND`` and the child's bootstrap
import.  The standard-library modules below cost milliseconds each; they load only when a
setting needs them (a URL or a JSON header to parse), never with no variable set.  Each
start runs in a subprocess of this environment's python and reports the modules it added
to ``sys.modules``: what the interpreter (or an editable install) loads anyway does not
count.  Also here: the records that replace ``typing.NamedTuple`` keep the typed fields, and
an app that has linked spans and sent profiles holds none of local mode's modules.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from helpers import PYROSPAN_RUN, backend_env, clean_env, start_server, stop
from recording_receiver import RecordingReceiver

from pyrospan_launch.launcher.child_env import bootstrap_dir
from pyrospan_launch.settings import config, registry

pytestmark = pytest.mark.e2e

COSTLY = ("typing", "json", "shutil", "importlib.util", "importlib.metadata", "inspect")
NOT_WITHOUT_URLS = ("urllib.parse",)
# re also loads with the profiler: pyroscope-io imports logging, which imports re.
NOT_WITHOUT_PYROSCOPE = ("re",)

# The launcher's fast path, stopped where it would exec the program.
LAUNCHER = """
import os, sys
before = set(sys.modules)
def execve(path, argv, env):
    print(" ".join(set(sys.modules) - before), flush=True)
    os._exit(0)
os.execve = execve
from pyrospan_launch.launcher.launch import main
main(["true"])
"""
# The first line of a program, which runs after the bootstrap.
PROGRAM = "import sys; print(' '.join(sys.modules))"

CASES = {
    "launcher": COSTLY + NOT_WITHOUT_URLS + NOT_WITHOUT_PYROSCOPE,
    "child": COSTLY + NOT_WITHOUT_URLS,
    "child without profiling": COSTLY + NOT_WITHOUT_URLS + NOT_WITHOUT_PYROSCOPE,
}


def _modules(code: str, env: dict[str, str], cwd: Path) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return set(done.stdout.split())


@pytest.fixture(scope="module")
def added(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """The modules each start-up adds, by case, with no pyrospan, Pyroscope or OTel setting."""
    cwd = tmp_path_factory.mktemp("startup")
    # The bootstrap's cache of instrumentation triggers, filled by the first child: reading
    # packages' metadata to fill it is a one-off (see pyrospan_launch.agent.triggers).
    env = clean_env(XDG_CACHE_HOME=str(cwd))
    child_env = {**env, "PYTHONPATH": bootstrap_dir()}
    baseline = _modules(PROGRAM, env, cwd)
    _modules(PROGRAM, child_env, cwd)
    found = {
        "launcher": _modules(LAUNCHER, env, cwd),
        "child": _modules(PROGRAM, child_env, cwd) - baseline,
        "child without profiling": _modules(
            PROGRAM, {**child_env, "PYROSPAN_PROFILING": "false"}, cwd
        )
        - baseline,
    }
    # Each really started: the launcher reached exec, the bootstrap armed what it should.
    assert "pyrospan_launch.launcher.launch" in found["launcher"]
    assert {
        "pyrospan_launch.agent.bootstrap",
        "pyrospan_launch.agent.tracing",
        "pyroscope",
    } <= found["child"]
    assert "pyrospan_launch.agent.tracing" in found["child without profiling"]
    assert "pyroscope" not in found["child without profiling"]
    # What pyroscope-io's own `import logging` loads in this interpreter, by itself.
    found["logging"] = (
        _modules("import sys; import logging; print(' '.join(sys.modules))", env, cwd) - baseline
    )
    return found


@pytest.mark.parametrize(
    ("case", "module"),
    [
        pytest.param(case, module, id=f"{case}-{module}")
        for case, modules in CASES.items()
        for module in modules
    ],
)
def test_start_up_does_not_import(added: dict[str, set[str]], case: str, module: str) -> None:
    if case == "child" and module in added["logging"]:
        # pyroscope-io imports logging; from Python 3.14 on logging's traceback imports
        # _colorize, which imports dataclasses and so inspect.  Not the bootstrap's doing,
        # and without the profiler the child still leaves it out (the case below).
        assert sys.version_info >= (3, 14), f"logging alone imports {module}"
        assert "pyroscope" in added[case]
        return
    assert module not in added[case]


@pytest.mark.parametrize(
    ("module", "record", "declared"),
    [
        (registry, registry.Setting, "_SettingFields"),
        (config, config.ProfilerConfig, "_ProfilerFields"),
        (config, config.Config, "_ConfigFields"),
    ],
)
def test_records_have_the_typed_fields(module: ModuleType, record: type, declared: str) -> None:
    """The namedtuple built at run time has the fields type checkers see, same defaults."""
    source = Path(str(module.__file__)).read_text(encoding="utf-8")
    (typed,) = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ClassDef) and node.name == declared
    ]
    fields = [
        (node.target.id, node.value)
        for node in typed.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    ]
    assert getattr(record, "_fields", None) == tuple(name for name, _ in fields)
    assert getattr(record, "_field_defaults", None) == {
        name: ast.literal_eval(value) for name, value in fields if value
    }


# A program that links a span, then waits until the test has seen its labelled samples
# arrive (through the relay, which rewrote them) before it lists what it has loaded.
SENT_PROFILES = """
import os, sys, time
from opentelemetry import trace

with trace.get_tracer("startup").start_as_current_span("work") as span:
    end = time.process_time() + 0.5
    while time.process_time() < end:
        pass
    print(format(span.get_span_context().span_id, "016x"), flush=True)
deadline = time.monotonic() + 30
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.05)
print(" ".join(sys.modules), flush=True)
"""


def test_an_app_that_sent_linked_profiles_holds_no_receiver_or_local_module(
    receiver: RecordingReceiver, tmp_path: Path
) -> None:
    seen = tmp_path / "seen"
    process = start_server(
        [PYROSPAN_RUN, sys.executable, "-c", SENT_PROFILES, str(seen)],
        backend_env(receiver, PYROSPAN_EAGER_INSTRUMENTATION="true"),
    )
    try:
        assert process.stdout is not None
        span_id = process.stdout.readline().strip()
        assert receiver.wait_for(
            lambda r: bool(r.samples_with_label("span_id", span_id)), timeout=20
        ), "no sample labelled with the span arrived"
        seen.touch()
        out, err = process.communicate(timeout=30)
    finally:
        stop(process)
    assert process.returncode == 0, err
    loaded = set(out.split())
    # It really went through the relay, which turned marker frames into labels.
    assert "pyrospan_launch.agent.relay.rewrite" in loaded
    assert "pyrospan_launch.wire.schemas" in loaded
    assert (
        sorted(
            name
            for name in loaded
            if name.startswith(("pyrospan_launch.receiver", "pyrospan_launch.local"))
        )
        == []
    )
