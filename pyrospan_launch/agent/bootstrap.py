"""What the injected sitecustomize runs in the child, before any user code.

Order: the profiler is configured, then OpenTelemetry (distro, configurator,
instrumentors), then the span-profile processor is added to the global SDK
TracerProvider.  Each part fails on its own: one ``pyrospan:`` line names the cause and
the app runs with whatever could start.  With ``PYROSPAN_STRICT=true`` a failure exits
with status 3 before user code runs instead.

:func:`initialize` runs once per process however often it is called, and :data:`state`
records what happened so tests and ``--info`` can see it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from pyrospan_launch.common import log
from pyrospan_launch.settings.config import Config, resolve
from pyrospan_launch.settings.report import EXIT_STRICT, report_bad_settings


class State:
    """What the bootstrap did in this process."""

    def __init__(self) -> None:
        self.initialized = False
        self.profiling = False
        self.tracing = False
        self.linking = False
        self.instrumentations: list[str] = []
        self.failures: list[str] = []
        self.config: Config | None = None


state = State()


def _fail(part: str, exc: BaseException, config: Config, swallow: bool) -> None:
    message = f"{part} disabled: {type(exc).__name__}: {exc}"
    state.failures.append(message)
    if config.strict:
        log.error(f"{message} (PYROSPAN_STRICT=true: exiting before the app starts)")
        if not swallow:
            raise SystemExit(EXIT_STRICT) from exc
        # site.py turns SystemExit raised in sitecustomize into a fatal error with a
        # traceback; leave quietly with our own status instead.
        os._exit(EXIT_STRICT)
    log.warning(message)
    if not swallow:
        raise exc


def _attempt(part: str, step: Callable[[], None], config: Config, swallow: bool) -> bool:
    try:
        step()
    except Exception as exc:
        _fail(part, exc, config, swallow)
        return False
    return True


def _report_config_errors(config: Config, swallow: bool) -> None:
    def stop() -> None:
        _fail("configuration", config.errors[0], config, swallow)

    report_bad_settings(config, os.environ, log.warning, stop)


def _run(config: Config, swallow: bool) -> None:
    _report_config_errors(config, swallow)

    labels = None
    if config.profiling and config.profiler is not None:
        from pyrospan_launch.agent import profiler

        def start_profiler() -> None:
            nonlocal labels
            assert config.profiler is not None
            labels = profiler.start(config.profiler)

        state.profiling = _attempt("profiling", start_profiler, config, swallow)
    else:
        log.debug(f"profiling off: {config.off_reasons.get('profiling', 'not requested')}")

    if not config.tracing:
        log.debug(f"tracing off: {config.off_reasons.get('tracing', 'not requested')}")
        return

    from pyrospan_launch.agent import tracing, triggers

    tracing.set_defaults()
    # Label switching needs pyrospan's runtime context, chosen before OpenTelemetry loads,
    # and the asyncio/thread-pool hooks in place before the app creates loops and pools.
    switching = labels is not None and tracing.select_label_switching_context()
    if switching:
        assert labels is not None
        from pyrospan_launch.agent.spans import handoff

        handoff.install(labels)

    def start_otel() -> None:
        state.tracing = _attempt("tracing", start_tracing, config, swallow)
        if state.tracing and labels is not None:
            state.linking = _attempt("span profiles", start_linking, config, swallow)
        if state.tracing and not state.linking:
            from pyrospan_launch.agent import app_tracer_provider

            app_tracer_provider.install(tracing.sdk_tracer_provider())
        log.debug(
            f"OpenTelemetry ready: tracing={state.tracing} linking={state.linking} "
            f"instrumentations={','.join(state.instrumentations) or 'none'}"
        )

    def start_tracing() -> None:
        from pyrospan_launch.agent import export_errors

        export_errors.install()
        state.instrumentations = tracing.start(lazy=not config.eager_instrumentation)

    def start_linking() -> None:
        from pyrospan_launch.agent.spans import span_context
        from pyrospan_launch.agent.spans.span_profiles import SpanProfileProcessor

        provider = tracing.sdk_tracer_provider()
        if provider is None:
            raise RuntimeError("the global TracerProvider is not the OpenTelemetry SDK's")
        assert labels is not None
        active = switching and tracing.label_switching_context_active()
        processor = SpanProfileProcessor(
            labels,
            span_name_label=config.span_name_label,
            trace_id_label=config.trace_id_label,
            context_switching=active,
        )
        provider.add_span_processor(processor)
        from pyrospan_launch.agent import app_tracer_provider

        app_tracer_provider.install(provider, processor)
        if active:
            span_context.enable(processor, labels)
            log.debug("span-profile processor added; labels follow the running context")
        else:
            log.debug("span-profile processor added; labels follow span start and end")

    if config.eager_instrumentation or config.strict:
        # Strict mode must see every failure before the app runs; eager mode is the
        # opentelemetry-instrument behaviour, for whoever needs it.
        start_otel()
        return
    watched = tracing.start_on_first_use(start_otel, triggers.modules(os.environ))
    state.tracing = True  # armed: starts with the app's first use
    log.debug(f"OpenTelemetry starts on first import of: {', '.join(watched)}")


def _watch_lifecycle() -> None:
    """Quiet pyrospan's fork warnings; send the last data at exit, SIGTERM and worker ends."""
    from pyrospan_launch.agent import fork_warnings, lifecycle, worker_exits

    fork_warnings.install()
    lifecycle.install_exit_handling()
    worker_exits.install()


def initialize(*, swallow_exceptions: bool = True, bootstrap_dir: str | None = None) -> None:
    """Start profiling, tracing and span linking in this process, once.

    ``swallow_exceptions=False`` re-raises the first failure (for tests).  While this
    runs, the bootstrap directory is taken off PYTHONPATH so that a process started
    during initialisation is not bootstrapped recursively; it is put back afterwards so
    that the app's own children are instrumented (unless ``PYROSPAN_CHILDREN=false``).
    """
    if state.initialized:
        return
    state.initialized = True
    try:
        _initialize(swallow_exceptions, bootstrap_dir)
    except Exception as exc:
        # A bug of ours must not stop the app: say so in one line and let it run.
        state.failures.append(f"bootstrap failed: {type(exc).__name__}: {exc}")
        log.warning(state.failures[-1])
        if not swallow_exceptions:
            raise


def _initialize(swallow_exceptions: bool, bootstrap_dir: str | None) -> None:
    config = resolve(os.environ)
    state.config = config
    log.set_level(config.log_level)
    log.debug(f"bootstrap in {sys.executable}, argv {sys.argv!r}")

    from pyrospan_launch.launcher.child_env import python_path_with, python_path_without

    original = os.environ.get("PYTHONPATH")
    if bootstrap_dir and original is not None:
        os.environ["PYTHONPATH"] = python_path_without(bootstrap_dir, original)
    try:
        from pyrospan_launch.agent import otel_instrument

        if otel_instrument.take_over(bootstrap_dir, tracing=config.tracing):
            return  # opentelemetry-instrument's own process: the app it execs starts us
        _run(config, swallow_exceptions)
        if state.profiling or state.tracing:
            _attempt("exit and fork handling", _watch_lifecycle, config, swallow_exceptions)
    finally:
        if bootstrap_dir and original is not None:
            if config.children:
                os.environ["PYTHONPATH"] = python_path_with(
                    bootstrap_dir, os.environ.get("PYTHONPATH")
                )
            elif not os.environ.get("PYTHONPATH"):
                # PYROSPAN_CHILDREN=false: stay off it, so programs the app starts run
                # untouched; with nothing of the user's left, unset it as it was.
                del os.environ["PYTHONPATH"]
    if state.linking or not state.tracing:
        log.debug(
            f"ready: profiling={state.profiling} tracing={state.tracing} "
            f"linking={state.linking} "
            f"instrumentations={','.join(state.instrumentations) or 'none'}"
        )
    else:
        log.debug(f"ready: profiling={state.profiling} tracing=on first use")
