"""The ``pyrospan-run`` command: check the settings, prepare the environment, exec the program.

The launcher stays light (click and this package only: OpenTelemetry and the profiler
load in the child) and execs, so the program keeps the PID, signals and exit status.
Each option only sets the environment variable it names, so a Dockerfile can do the same
with ``ENV`` lines and ``ENTRYPOINT ["pyrospan-run"]``.

Local mode (``--local``, ``--serve``, ``--render``) is the exception that does not exec:
the launcher supervises the program to write a report after it.  Its package loads only
when one of those is used.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

import click

from pyrospan_launch import __version__
from pyrospan_launch.launcher import child_env, program
from pyrospan_launch.launcher.program import PROG
from pyrospan_launch.settings import config, registry

_OPTIONS = tuple(setting for setting in registry.ALL if setting.option)


def _setting_options(command: Callable[..., None]) -> Callable[..., None]:
    """One click option per registered setting that names one, in the registry's order.

    Each option's value arrives under the setting's name in lower case, so
    :func:`_overrides` maps it back without reading the option's spelling.
    """
    for setting in reversed(_OPTIONS):
        flag = not setting.metavar
        if flag:
            shown = f"{setting.name}={'false' if setting.option.startswith('--no-') else 'true'}"
        else:
            shown = setting.name
        command = click.option(
            setting.option,
            setting.name.lower(),
            is_flag=flag,
            metavar=setting.metavar or None,
            help=f"{setting.option_help} ({shown}).",
        )(command)
    return command


def _overrides(**options: str | bool | None) -> dict[str, str]:
    """The environment variables that the given command-line options stand for."""
    env: dict[str, str] = {}
    for setting in _OPTIONS:
        value = options.get(setting.name.lower())
        if not value:
            continue
        if isinstance(setting.default, bool):
            env[setting.name] = "false" if setting.option.startswith("--no-") else "true"
        else:
            env[setting.name] = str(value)
    return env


def _local_tool(
    argv: tuple[str, ...],
    serve: bool,
    render_dir: str | None,
    port: int | None,
    env: dict[str, str],
) -> None:
    """``--serve`` or ``--render``: local mode without a program of its own."""
    if argv:
        raise click.UsageError("--serve and --render take no COMMAND")
    if serve and render_dir is not None:
        raise click.UsageError("use either --serve or --render")
    from pyrospan_launch.local import modes

    if render_dir is not None:
        sys.exit(modes.render(render_dir))
    resolved = program.check_settings(env)
    sys.exit(modes.serve(resolved.report_dir, modes.DEFAULT_SERVE_PORT if port is None else port))


@click.command(
    context_settings={
        "allow_interspersed_args": False,
        "help_option_names": ["-h", "--help"],
        "max_content_width": 100,
    },
    epilog="Every option sets the environment variable named in its help; run "
    "`pyrospan-run --info` to see them all with their current values.",
)
@_setting_options
@click.option(
    "--serve",
    is_flag=True,
    help="Run only the local receiver and live page, for several processes, until Ctrl-C; "
    "then write the report.",
)
@click.option(
    "--render",
    "render_dir",
    metavar="DIR",
    help="Print the summary and write the report and pprof files again from DIR's data.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    metavar="N",
    help="Port of the local receiver on 127.0.0.1 (--local: any free one; --serve: 4040).",
)
@click.option(
    "--info",
    "show_info",
    is_flag=True,
    help="Print the resolved configuration and the instrumentations that will load, then exit.",
)
@click.option(
    "--check",
    "run_check",
    is_flag=True,
    help="Send one small profile and one span as the agent would (relay, proxy, TLS, auth, "
    "tenant, headers) and say what each backend answered; exit 0 only if both accepted. "
    "A COMMAND, if given, is not run: it only names the service.",
)
@click.version_option(__version__, "--version", "-V", prog_name=PROG)
@click.argument("argv", nargs=-1, type=click.UNPROCESSED, metavar="[--] COMMAND [ARGS]...")
def run(
    argv: tuple[str, ...],
    show_info: bool,
    run_check: bool,
    serve: bool,
    render_dir: str | None,
    port: int | None,
    **options: str | bool | None,
) -> None:
    """Run COMMAND with OpenTelemetry tracing and Pyroscope profiling, root spans linked to
    their CPU profiles.

    \b
    Examples:
      pyrospan-run python app.py
      pyrospan-run --service-name shop gunicorn -w 2 shop.wsgi
      pyrospan-run python -m uvicorn app:app --workers 2
      pyrospan-run --local python app.py      (no backend: live page, summary, report)
    """
    overrides = _overrides(**options)
    if serve or render_dir is not None:
        _local_tool(argv, serve, render_dir, port, {**os.environ, **overrides})
        return
    bootstrap = program.bootstrap_dir()
    environ = child_env.restore_auto_instrumentation(os.environ)
    env = child_env.build(environ, argv, overrides, bootstrap)
    if show_info:
        from pyrospan_launch.launcher import info

        named, _ = config.service_name_of({**os.environ, **overrides})
        report = info.render(env, argv, bootstrap, derived_name=named is None)
        click.echo(report, nl=False)
        return
    if run_check:
        from pyrospan_launch.launcher import check

        if config.resolve(env).local:
            raise click.UsageError("--check sends to the configured backends: not with --local")

        sys.exit(check.run(env, click.echo))
    if not argv:
        raise click.UsageError("missing COMMAND (for example: pyrospan-run python app.py)")
    asked = config.resolve(env)
    if asked.local:
        from pyrospan_launch.local import environment

        # Local mode sets the backend variables itself: the user's do not matter.
        env = environment.without_backend(env)
    resolved = program.check_settings(env)
    if port is not None and not asked.local:
        raise click.UsageError("--port needs --local or --serve")
    program.execute(argv, env, resolved, local=asked.local, report_dir=asked.report_dir, port=port)


def main(args: Sequence[str] | None = None, prog_name: str = PROG) -> None:
    """The click command line (:func:`pyrospan_launch.launcher.launch.main` decides when)."""
    run.main(args=args, prog_name=prog_name)
