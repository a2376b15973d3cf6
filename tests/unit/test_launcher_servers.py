"""``--info`` names the server in the command; a mode span profiles cannot cover gets one line."""

from __future__ import annotations

import pytest

from pyrospan_launch.launcher.servers import describe, environment, notice


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
