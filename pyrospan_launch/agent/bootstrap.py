"""What the injected sitecustomize runs in the child, before any user code.

Order: the profiler is configured, then OpenTelemetry (distro, configurator,
instrumentors), then the span-profile processor is added to the global SDK
TracerProvider.  Each part fails on its own: one ``pyrospan:`` line names the cause and
the app runs with whatever could start.  With ``PYROSPAN_STRICT=true`` a failure exits
with status 3 before user code runs instead.

:func:`initialize` runs once per process however often it is called; the
:class:`~pyrospan_launch.agent.agent.Agent` it builds records what happened.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from pyrospan_launch.agent import agent as the_agent
from pyrospan_launch.agent.agent import Agent
from pyrospan_launch.common import log
from pyrospan_launch.settings.config import Config, resolve
from pyrospan_launch.settings.report import EXIT_STRICT, report_bad_settings

# typing for type checkers only (docs/design.md, start-up imports).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrospan_launch.agent.spans.labels import LabelSwitch


def _fail(
    agent: Agent,
    part: str,
    exc: BaseException,
    config: Config,
    swallow: bool,
    message: str | None = None,
) -> None:
    message = message or f"{part} disabled: {type(exc).__name__}: {exc}"
    agent.failures.append(message)
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


def _attempt(
    agent: Agent, part: str, step: Callable[[], None], config: Config, swallow: bool
) -> bool:
    try:
        step()
    except Exception as exc:
        _fail(agent, part, exc, config, swallow)
        return False
    return True


def _report_config_errors(agent: Agent, config: Config, swallow: bool) -> None:
    def stop() -> None:
        _fail(agent, "configuration", config.errors[0], config, swallow)

    report_bad_settings(config, os.environ, log.warning, stop)


def _without_profiler(agent: Agent, config: Config, swallow: bool) -> LabelSwitch:
    """pyroscope-io is not installed: say so once, and link spans all the same.

    Root spans still get ``pyroscope.profile.id`` (the processor needs a label switch,
    here one with nothing to label), so traces look the same wherever the profiler runs.
    """
    from pyrospan_launch.agent import profiler
    from pyrospan_launch.common import profiler_support

    message = profiler_support.unavailable_reason()
    try:
        import pyroscope  # noqa: F401  (the error the line stands for, for tests and strict)
    except ModuleNotFoundError as exc:
        _fail(agent, "profiling", exc, config, swallow, message)
    return profiler.links_only()


def _run(agent: Agent, config: Config, swallow: bool) -> None:
    _report_config_errors(agent, config, swallow)

    labels = None
    if config.profiling and config.profiler is not None:
        from pyrospan_launch.agent import profiler

        def start_profiler() -> None:
            nonlocal labels
            assert config.profiler is not None
            # Marker frames need span linking: without tracing there is no span to mark.
            method = config.span_labels if config.tracing else "tags"
            follow = agent.spans_follow if config.tracing else None
            labels = profiler.start(config.profiler, agent.lifecycle, method, follow)
            agent.labels = labels
            agent.service_names.profile_name = config.profiler.application_name

        if profiler.installed():
            agent.profiling = _attempt(agent, "profiling", start_profiler, config, swallow)
        else:
            labels = _without_profiler(agent, config, swallow)
    else:
        log.debug(f"profiling off: {config.off_reasons.get('profiling', 'not requested')}")

    if not config.tracing:
        log.debug(f"tracing off: {config.off_reasons.get('tracing', 'not requested')}")
        return

    from pyrospan_launch.agent import tracing, triggers

    tracing.set_defaults()
    # Label switching needs pyrospan's runtime context, chosen before OpenTelemetry loads,
    # and the asyncio/thread-pool hooks in place before the app creates loops and pools.
    # Without a profiler there is nothing to label: spans get only pyroscope.profile.id.
    switching = (
        labels is not None
        and agent.profiling
        and tracing.select_label_switching_context(agent.import_hooks)
    )
    if switching:
        assert labels is not None
        from pyrospan_launch.agent.spans import handoff

        handoff.install(labels, agent.import_hooks)

    def start_otel() -> None:
        agent.tracing = _attempt(agent, "tracing", start_tracing, config, swallow)
        if agent.tracing and labels is not None:
            agent.linking = _attempt(agent, "span profiles", start_linking, config, swallow)
        if agent.tracing and not agent.linking:
            agent.provider_handover.install(tracing.sdk_tracer_provider())
        log.debug(
            f"OpenTelemetry ready: tracing={agent.tracing} linking={agent.linking} "
            f"instrumentations={','.join(agent.instrumentations) or 'none'}"
        )

    def start_tracing() -> None:
        from pyrospan_launch.agent import export_errors

        if agent.export_filters is None:
            agent.export_filters = export_errors.install(agent.lifecycle)
        agent.instrumentations = tracing.start(
            agent.lifecycle, agent.import_hooks, lazy=not config.eager_instrumentation
        )

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
        if labels.warm_up is not None:
            labels.warm_up()
        agent.provider_handover.install(provider, processor)
        if active:
            agent.link_context(processor, labels)
            span_context.bind_running(agent)
            log.debug("span-profile processor added; labels follow the running context")
        else:
            log.debug("span-profile processor added; labels follow span start and end")

    if config.eager_instrumentation or config.strict:
        # Strict mode must see every failure before the app runs; eager mode is the
        # opentelemetry-instrument behaviour, for whoever needs it.
        start_otel()
        return
    watched = tracing.start_on_first_use(
        start_otel, triggers.modules(os.environ), agent.import_hooks
    )
    agent.tracing = True  # armed: starts with the app's first use
    log.debug(f"OpenTelemetry starts on first import of: {', '.join(watched)}")


def initialize(*, swallow_exceptions: bool = True, bootstrap_dir: str | None = None) -> None:
    """Start profiling, tracing and span linking in this process, once.

    ``swallow_exceptions=False`` re-raises the first failure (for tests).  While this
    runs, the bootstrap directory is taken off PYTHONPATH so that a process started
    during initialisation is not bootstrapped recursively; it is put back afterwards so
    that the app's own children are instrumented (unless ``PYROSPAN_CHILDREN=false``).
    """
    if the_agent.current() is not None:
        return
    agent = Agent()
    the_agent.make_current(agent)
    try:
        _initialize(agent, swallow_exceptions, bootstrap_dir)
    except Exception as exc:
        # A bug of ours must not stop the app: say so in one line and let it run.
        agent.failures.append(f"bootstrap failed: {type(exc).__name__}: {exc}")
        log.warning(agent.failures[-1])
        if not swallow_exceptions:
            raise


def _initialize(agent: Agent, swallow_exceptions: bool, bootstrap_dir: str | None) -> None:
    config = resolve(os.environ)
    agent.config = config
    log.set_level(config.log_level)
    log.debug(f"bootstrap in {sys.executable}, argv {sys.argv!r}")

    from pyrospan_launch.common.python_path import python_path_with, python_path_without

    original = os.environ.get("PYTHONPATH")
    if bootstrap_dir and original is not None:
        os.environ["PYTHONPATH"] = python_path_without(bootstrap_dir, original)
    try:
        from pyrospan_launch.agent import otel_instrument

        if otel_instrument.take_over(bootstrap_dir, agent.import_hooks, tracing=config.tracing):
            return  # opentelemetry-instrument's own process: the app it execs starts us
        _run(agent, config, swallow_exceptions)
        if agent.profiling or agent.tracing:
            _attempt(
                agent, "exit and fork handling", agent.watch_lifecycle, config, swallow_exceptions
            )
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
    if agent.linking or not agent.tracing:
        log.debug(
            f"ready: profiling={agent.profiling} tracing={agent.tracing} "
            f"linking={agent.linking} "
            f"instrumentations={','.join(agent.instrumentations) or 'none'}"
        )
    else:
        log.debug(f"ready: profiling={agent.profiling} tracing=on first use")
