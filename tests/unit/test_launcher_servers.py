"""``--info`` names the server in the command; a mode span profiles cannot cover gets one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyrospan_launch.launcher.servers import describe, environment, notice, uwsgi_mules


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("uwsgi --master --processes 2 --http :8000 -w app", "fork hooks"),
        ("uwsgi --master --processes 2 --die-on-term -w app", "UWSGI_PY_CALL_UWSGI_FORK_HOOKS"),
        ("/srv/bin/gunicorn -k gevent -w 2 app:app", "real threads under monkey-patching"),
        ("gunicorn --worker-class=uvicorn.workers.UvicornWorker app:app", "uvicorn workers"),
        ("gunicorn -w 4 app:app", "gunicorn with sync workers"),
        ("granian --interface asgi --workers 2 app:app", "granian (asgi)"),
        ("python -m uvicorn --workers 2 app:app", "forked workers"),
        ("python3 -m hypercorn app:app", "hypercorn: one process"),
        ("daphne app:app", "daphne: one process"),
        ("celery -A tasks worker --pool threads", "threads pool"),
    ],
)
def test_info_names_the_server_and_its_workers(command: str, says: str) -> None:
    line = describe(command.split(), {})
    assert line is not None and says in line


def test_uwsgi_without_die_on_term_is_told_sigterm_reloads() -> None:
    assert "--die-on-term" in (describe(["uwsgi", "--master"], {}) or "")
    assert "--die-on-term" not in (describe(["uwsgi", "--master", "--die-on-term"], {}) or "")


def test_other_programs_are_not_servers() -> None:
    assert describe(["python", "app.py"], {}) is None
    assert describe(["celery", "-A", "tasks", "beat"], {}) is None


@pytest.mark.parametrize(
    ("command", "environ", "warned"),
    [
        ("granian app:app", {}, True),  # rsgi is granian's default
        ("granian --interface rsgi app:app", {}, True),
        ("granian app:app", {"GRANIAN_INTERFACE": "asgi"}, False),
        ("granian --interface=wsgi app:app", {}, False),
        ("uwsgi --master", {}, False),
    ],
)
def test_one_line_when_span_profiles_cannot_work(
    command: str, environ: dict[str, str], warned: bool
) -> None:
    line = notice(command.split(), environ)
    assert (line is not None) is warned
    if line:
        assert "no RSGI instrumentation" in line and "--interface asgi" in line


def test_uwsgi_is_told_to_fork_with_python_fork_hooks() -> None:
    assert environment(["uwsgi", "--master"], {}) == {"UWSGI_PY_CALL_UWSGI_FORK_HOOKS": "true"}
    assert environment(["uwsgi", "--py-call-uwsgi-fork-hooks"], {}) == {}
    assert environment(["uwsgi"], {"UWSGI_PY_CALL_UWSGI_FORK_HOOKS": "false"}) == {}
    assert environment(["gunicorn", "app:app"], {}) == {}


@pytest.mark.parametrize(
    ("argv", "mules"),
    [
        (["--mules", "2"], True),
        (["--mules=1"], True),
        (["--mules", "0"], False),
        (["--mule"], True),
        (["--mule", "--master"], True),
        (["--mule=tasks.py"], True),
        (["--farm", "jobs:1,2"], True),
        (["--mule-harakiri", "30"], False),
        (["--master"], False),
    ],
)
def test_uwsgi_mules_on_the_command_line(argv: list[str], mules: bool) -> None:
    assert uwsgi_mules(["uwsgi", *argv], {}) is mules


@pytest.mark.parametrize(
    ("name", "text", "mules"),
    [
        ("app.ini", "[uwsgi]\nmaster = true\nmules = 2\n", True),
        ("app.ini", "[uwsgi]\n# mules = 2\nmule-harakiri = 3\n", False),
        ("app.ini", "[uwsgi]\nmule = tasks.py\n", True),
        ("app.yaml", "uwsgi:\n  mules: 2\n", True),
        ("app.json", '{"uwsgi": {"mules": 0}}\n', False),
        ("app.json", '{"uwsgi": {\n  "mules": 3\n}}\n', True),
        ("app.xml", "<uwsgi>\n<mule/>\n</uwsgi>\n", True),
        ("app.xml", "<uwsgi><processes>2</processes></uwsgi>\n", False),
    ],
)
def test_uwsgi_mules_in_a_config_file(tmp_path: Path, name: str, text: str, mules: bool) -> None:
    config = tmp_path / name
    config.write_text(text)
    option = "--" + name.rpartition(".")[2]
    assert uwsgi_mules(["uwsgi", option, str(config)], {}) is mules
    assert uwsgi_mules(["uwsgi", f"{option}={config}"], {}) is mules
    assert uwsgi_mules(["uwsgi", str(config)], {}) is mules  # a lone file argument


def test_uwsgi_mules_in_a_section_variable_or_missing_file(tmp_path: Path) -> None:
    config = tmp_path / "app.ini"
    config.write_text("[prod]\nmules = 1\n")
    assert uwsgi_mules(["uwsgi", "--ini", f"{config}:prod"], {})
    assert uwsgi_mules(["uwsgi", "--master"], {"UWSGI_MULES": "2"})
    assert not uwsgi_mules(["uwsgi", "--master"], {"UWSGI_MULES": "0"})
    assert not uwsgi_mules(["uwsgi", "--ini", str(tmp_path / "gone.ini")], {})


def test_uwsgi_with_mules_is_not_told_to_run_the_fork_hooks(tmp_path: Path) -> None:
    # uWSGI 2.0 forks mules without the GIL under that flag: each crashes at once.
    assert environment(["uwsgi", "--master", "--mules", "1"], {}) == {}
    config = tmp_path / "app.ini"
    config.write_text("[uwsgi]\nmules = 1\n")
    assert environment(["uwsgi", "--ini", str(config)], {}) == {}
    line = describe(["uwsgi", "--master", "--mules", "1", "--die-on-term"], {})
    assert line is not None and "not told to run Python's fork hooks, as its mules" in line
    # The user's own choice stands, and the line does not say otherwise.
    chosen = ["uwsgi", "--mules", "1", "--py-call-uwsgi-fork-hooks", "--die-on-term"]
    assert environment(chosen, {}) == {}
    line = describe(chosen, {})
    assert line is not None and "told to run Python's fork hooks (" in line
