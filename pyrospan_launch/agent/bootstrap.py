"""What the injected sitecustomize runs in the child, before any user code.

:class:`Bootstrap` has one method per part, in order: the profiler, then OpenTelemetry
(distro, configurator, instrumentors; at once or on the app's first use), then span
linking (the span-profile processor on the global SDK TracerProvider), then the
children (the bootstrap directory back on PYTHONPATH for the programs the app starts).
Each method leaves its part in one state of :mod:`pyrospan_launch.agent.agent` (off,
armed, on or failed) and fails on its own: one ``pyrospan:`` line names the cause and
the app runs with whatever could start.  With ``PYROSPAN_STRICT=true`` a failure exits
with status 3 before user code runs instead.

:func:`initialize` runs once per process however often it is called; the
:class:`~pyrospan_launch.agent.agent.Agent` it builds records what happened.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, MutableMapping

from pyrospan_launch.agent import agent as the_agent
from pyrospan_launch.agent.agent import ARMED, FAILED, OFF, ON, Agent
from pyrospan_launch.common import log
from pyrospan_launch.settings import registry
from pyrospan_launch.settings.config import Config, resolve
from pyrospan_launch.settings.report import EXIT_STRICT, report_bad_settings
from pyrospan_launch.settings.sampling import CPU_TIMERS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrospan_launch.agent.spans.labels import LabelSwitch, RootLabels
    from pyrospan_launch.agent.spans.span_profiles import SpanProfileProcessor


class Bootstrap:
    """Starts each part of the agent in one process and records its state on ``agent``.

    ``environ`` is the process environment (PYTHONPATH is edited in it) and ``exit`` how
    strict mode leaves; tests pass their own.
    """

    def __init__(
        self,
        agent: Agent,
        config: Config,
        *,
        bootstrap_dir: str | None = None,
        environ: MutableMapping[str, str] | None = None,
        exit: Callable[[int], object] = os._exit,
    ) -> None:
        self.agent = agent
        self.config = config
        self.bootstrap_dir = bootstrap_dir
        self.environ: MutableMapping[str, str] = os.environ if environ is None else environ
        self._exit = exit
        self._labels: LabelSwitch | None = None
        # Whether pyrospan's runtime context was chosen, so labels can follow it.
        self._switching = False
        self._python_path: str | None = None

    def run(self) -> None:
        """Every part, in order; the children part even when another one raised."""
        from pyrospan_launch.agent import otel_instrument

        agent = self.agent
        self.hold_children()
        try:
            if otel_instrument.take_over(
                self.bootstrap_dir, agent.import_hooks, tracing=self.config.tracing
            ):
                return  # opentelemetry-instrument's own process: the app it execs starts us
            self.report_settings()
            self.profiler()
            self.tracing()
            self.exit_handling()
        finally:
            self.children()
        log.debug(
            f"ready: profiling={agent.profiling} tracing={agent.tracing} "
            f"linking={agent.linking} children={agent.children} "
            f"instrumentations={','.join(agent.instrumentations) or 'none'}"
        )

    # --- failures --------------------------------------------------------------------

    def _fail(self, what: str, exc: BaseException, message: str | None = None) -> None:
        message = message or f"{what} disabled: {type(exc).__name__}: {exc}"
        self.agent.failures.append(message)
        if self.config.strict:
            log.error(f"{message} (PYROSPAN_STRICT=true: exiting before the app starts)")
            # site.py turns SystemExit raised in sitecustomize into a fatal error with a
            # traceback; leave quietly with our own status instead.
            self._exit(EXIT_STRICT)
            return
        log.warning(message)

    def _attempt(self, part: str, what: str, step: Callable[[], None]) -> None:
        """Run ``step``; the part is on after it, or failed with one line naming ``what``."""
        try:
            step()
        except Exception as exc:
            setattr(self.agent, part, FAILED)
            self._fail(what, exc)
        else:
            setattr(self.agent, part, ON)

    def report_settings(self) -> None:
        """One line per bad or changed value, once per run; strict mode stops on the first."""
        config = self.config
        sampling = self.agent.sampling = config.sampling
        if config.profiling and sampling.asked == "stack" and not sampling.stack:
            log.warning(f"PYROSPAN_SAMPLER=stack: py-spy samples instead: {sampling.reason}")
        profiler = config.profiler
        if (
            profiler is not None
            and sampling.stack
            and profiler.sample_rate != registry.BY_FIELD["profiler.sample_rate"].default
            and sys.version_info < CPU_TIMERS
        ):
            log.warning(
                f"PYROSCOPE_SAMPLE_RATE={profiler.sample_rate}: the Stack sampler's wall-clock "
                "loop (before CPython 3.12) keeps its own interval; set PYROSPAN_SAMPLER=pyspy "
                "for a fixed rate"
            )

        def stop() -> None:
            first = config.errors[0] if config.errors else ValueError(config.notices[0])
            self._fail("configuration", first)

        report_bad_settings(config, self.environ, log.warning, stop)

    # --- the parts -------------------------------------------------------------------

    def profiler(self) -> None:
        """Start pyroscope-io with the labels spans will switch."""
        config = self.config
        if not (config.profiling and config.profiler is not None):
            log.debug(f"profiling off: {config.off_reasons.get('profiling', 'not requested')}")
            return
        from pyrospan_launch.agent import profiler

        if not profiler.installed():
            self._without_profiler()
            return
        self._attempt("profiling", "profiling", self._start_profiler)

    def _without_profiler(self) -> None:
        """pyroscope-io is not installed: say so once, and link spans all the same.

        Root spans still get ``pyroscope.profile.id`` (the processor needs a label switch,
        here one with nothing to label), so traces look the same wherever it runs.
        """
        from pyrospan_launch.agent import profiler
        from pyrospan_launch.common import profiler_support

        self.agent.profiling = FAILED
        self._labels = profiler.links_only()
        try:
            import pyroscope  # noqa: F401  (the error the line stands for)
        except ImportError as exc:
            self._fail("profiling", exc, profiler_support.unavailable_reason())

    def _start_profiler(self) -> None:
        from pyrospan_launch.agent import app_tags
        from pyrospan_launch.agent.profiler import Profiler

        config, agent = self.config, self.agent
        assert config.profiler is not None
        follow = agent.spans_follow if config.tracing else None
        profiler = Profiler(
            config.profiler,
            config.sampling,
            agent.lifecycle,
            spans_follow=follow,
            on_relay=agent.keep_relay,
            on_sampling=agent.keep_sampling,
        )
        agent.profiler = profiler
        self._labels = profiler.start(app_tags.room_for(config))
        agent.labels = self._labels
        agent.app_tags = profiler.app_tags
        agent.service_names.profile_name = config.profiler.application_name

    def tracing(self) -> None:
        """Start OpenTelemetry now (eager or strict), or arm it for the app's first use."""
        config, agent = self.config, self.agent
        if not config.tracing:
            log.debug(f"tracing off: {config.off_reasons.get('tracing', 'not requested')}")
            return
        from pyrospan_launch.agent import tracing, triggers

        tracing.set_defaults()
        # Label switching needs pyrospan's runtime context, chosen before OpenTelemetry
        # loads, and the asyncio/thread-pool hooks in place before the app makes loops and
        # pools.
        # Without a profiler there is nothing to label: spans get only pyroscope.profile.id.
        labels = self._labels
        self._switching = (
            labels is not None
            and agent.profiling == ON
            and tracing.select_label_switching_context(agent.import_hooks)
        )
        if self._switching:
            assert labels is not None
            from pyrospan_launch.agent.spans import handoff

            handoff.install(labels, agent.import_hooks)
            from pyrospan_launch.agent.spans import server_frames

            server_frames.install(labels, agent.import_hooks)
        if config.eager_instrumentation or config.strict:
            # Strict mode must see every failure before the app runs; eager mode is the
            # opentelemetry-instrument behaviour, for whoever needs it.
            self.start_opentelemetry()
            return
        watched = tracing.start_on_first_use(
            self.start_opentelemetry, triggers.modules(self.environ), agent.import_hooks
        )
        agent.tracing = ARMED
        if labels is not None:
            agent.linking = ARMED
        log.debug(f"OpenTelemetry starts on first import of: {', '.join(watched)}")

    def start_opentelemetry(self) -> None:
        """Tracing, then span linking: at start-up, or inside the app's first import.

        Under the interpreter's start-up warning filters, as opentelemetry-instrument sets
        up before the app runs; the app's filters are back afterwards.
        """
        with self.agent.startup_warnings.applied():
            self._start_opentelemetry()

    def _start_opentelemetry(self) -> None:
        from pyrospan_launch.agent import tracing

        agent = self.agent
        self._attempt("tracing", "tracing", self._start_tracing)
        if agent.tracing == ON and self._labels is not None:
            self.linking()
        elif agent.linking == ARMED:
            agent.linking = OFF
        if agent.tracing == ON and agent.linking != ON:
            agent.provider_handover.install(tracing.sdk_tracer_provider())
        log.debug(
            f"OpenTelemetry ready: tracing={agent.tracing} linking={agent.linking} "
            f"instrumentations={','.join(agent.instrumentations) or 'none'}"
        )

    def _start_tracing(self) -> None:
        from pyrospan_launch.agent import export_errors, tracing

        agent = self.agent
        if agent.export_filters is None:
            agent.export_filters = export_errors.install(agent.lifecycle)
        from pyrospan_launch.common.skipped import SkippedRecord

        agent.instrumentations = tracing.start(
            agent.lifecycle,
            agent.import_hooks,
            lazy=not self.config.eager_instrumentation,
            filters=agent.startup_warnings,
            skipped=SkippedRecord(),
        )

    def linking(self) -> None:
        """Add the span-profile processor to the global SDK TracerProvider."""
        self._attempt("linking", "span profiles", self._link_spans)

    def _link_spans(self) -> None:
        from pyrospan_launch.agent import tracing
        from pyrospan_launch.agent.spans import span_context
        from pyrospan_launch.agent.spans.span_profiles import SpanProfileProcessor

        config, agent, labels = self.config, self.agent, self._labels
        provider = tracing.sdk_tracer_provider()
        if provider is None:
            raise RuntimeError("the global TracerProvider is not the OpenTelemetry SDK's")
        assert labels is not None
        active = self._switching and tracing.label_switching_context_active()
        processor = SpanProfileProcessor(
            labels,
            span_name_label=config.span_name_label,
            trace_id_label=config.trace_id_label,
            context_switching=active,
        )
        provider.add_span_processor(processor)
        self._watch_unframed(processor)
        if labels.warm_up is not None:
            labels.warm_up()
        agent.provider_handover.install(provider, processor)
        if active:
            agent.link_context(processor, labels)
            span_context.bind_running(agent)
            log.debug("span-profile processor added; labels follow the running context")
        else:
            log.debug("span-profile processor added; labels follow span start and end")

    def _watch_unframed(self, processor: SpanProfileProcessor) -> None:
        """Under the Stack sampler, a root span no marker frame will carry is said once.

        Only a thread tag labels it, and the Stack sampler reads none: ``auto`` moves the
        process to py-spy, an explicit ``stack`` warns (Profiler.move_to_pyspy).
        """
        profiler = self.agent.profiler
        if profiler is None or not (profiler.sampling.stack and profiler.sampling.frames):
            return
        processor.foreign_thread = profiler.see_current_thread
        switch = self._labels
        assert switch is not None
        # Tasks that burn CPU where they open their root span learn to run those steps in
        # opening markers (spans/openings); only a loss that cannot be learned is said.
        switch.openings = True

        def said_once() -> None:
            processor.unframed = processor.unmarked = switch.unmarked_opening = None

        def unframed(name: str) -> None:
            import threading

            # Said once for the process, whatever the answer: the span's end is not said.
            said_once()
            thread = threading.current_thread().name
            profiler.move_to_pyspy(
                f"root span {name!r} started on thread {thread!r} outside any request, "
                "task or thread-pool boundary, where no marker frame carries it"
            )

        processor.unframed = unframed

        def unmarked(name: str, ms: float) -> None:
            said_once()
            profiler.move_to_pyspy(
                f"root span {name!r} ran {ms:.0f} ms and ended without ever running inside "
                "its marker frame (as one opened in an asyncio task that does not await "
                "afterwards)"
            )

        processor.unmarked = unmarked

        def unmarked_opening(node: RootLabels, ms: float) -> None:
            said_once()
            # The span's name as its marker carries it, or its id with span names off.
            span_id, name, _ = node.marker_parts or (f"{node.span_id:016x}", "", "")
            shown = name or span_id
            profiler.move_to_pyspy(
                f"root span {shown!r} burned {ms:.0f} ms of CPU in the asyncio task step that "
                "opened it, before the task's next await, where no marker frame carries it"
            )

        switch.unmarked_opening = unmarked_opening

    def exit_handling(self) -> None:
        """Fork and exit handling, when something runs that needs it."""
        if self.agent.profiling != ON and self.agent.tracing not in (ON, ARMED):
            return
        self._attempt("exit_handling", "exit and fork handling", self.agent.watch_lifecycle)

    def hold_children(self) -> None:
        """Take the bootstrap directory off PYTHONPATH while the parts start.

        A process started during initialisation must not be bootstrapped recursively.
        """
        self._python_path = self.environ.get("PYTHONPATH")
        if self.bootstrap_dir and self._python_path is not None:
            from pyrospan_launch.common.python_path import python_path_without

            self.environ["PYTHONPATH"] = python_path_without(self.bootstrap_dir, self._python_path)

    def children(self) -> None:
        """Put the bootstrap directory back, so the programs the app starts are ours too."""
        if not self.bootstrap_dir or self._python_path is None:
            return  # not started through PYTHONPATH: nothing to hand on
        if self.config.children:
            self._attempt("children", "instrumenting child programs", self._hand_on)
        elif not self.environ.get("PYTHONPATH"):
            # PYROSPAN_CHILDREN=false: stay off it, so programs the app starts run
            # untouched; with nothing of the user's left, unset it as it was.
            del self.environ["PYTHONPATH"]

    def _hand_on(self) -> None:
        from pyrospan_launch.common.python_path import python_path_with

        assert self.bootstrap_dir is not None
        self.environ["PYTHONPATH"] = python_path_with(
            self.bootstrap_dir, self.environ.get("PYTHONPATH")
        )


def initialize(*, bootstrap_dir: str | None = None) -> None:
    """Start profiling, tracing and span linking in this process, once.

    While this runs, the bootstrap directory is taken off PYTHONPATH so that a process
    started during initialisation is not bootstrapped recursively; it is put back
    afterwards so that the app's own children are instrumented (unless
    ``PYROSPAN_CHILDREN=false``).
    """
    if the_agent.current() is not None:
        return
    agent = Agent()
    the_agent.make_current(agent)
    try:
        _initialize(agent, bootstrap_dir)
    except Exception as exc:
        # A bug of ours must not stop the app: say so in one line and let it run.
        agent.failures.append(f"bootstrap failed: {type(exc).__name__}: {exc}")
        log.warning(agent.failures[-1])


def _initialize(agent: Agent, bootstrap_dir: str | None) -> None:
    config = resolve(os.environ)
    agent.config = config
    agent.lifecycle.exit_timeout = config.exit_timeout
    log.set_level(config.log_level)
    log.debug(f"bootstrap in {sys.executable}, argv {sys.argv!r}")
    Bootstrap(agent, config, bootstrap_dir=bootstrap_dir).run()
