"""The agent's state in one object: what it started, the labels, the links, the lifecycle.

:func:`pyrospan_launch.agent.bootstrap.initialize` builds one :class:`Agent` per process
and makes it :func:`current`; tests build their own.  The one module-level name is that
handle: OpenTelemetry creates the runtime context through an entry point, with no
arguments, so the context finds the agent here.
"""

from __future__ import annotations

import os

from pyrospan_launch.agent.app_tracer_provider import ProviderHandover
from pyrospan_launch.agent.fork_warnings import ForkWarnings
from pyrospan_launch.agent.import_hooks import ImportHooks
from pyrospan_launch.agent.lifecycle import Lifecycle
from pyrospan_launch.agent.service_names import ServiceNames
from pyrospan_launch.agent.startup_warnings import StartupWarnings
from pyrospan_launch.agent.uwsgi_workers import UwsgiWorkers, in_uwsgi
from pyrospan_launch.agent.worker_exits import WorkerExits

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrospan_launch.agent.app_tags import AppTags
    from pyrospan_launch.agent.export_errors import ExportErrorFilter, HeaderWarningFilter
    from pyrospan_launch.agent.profiler import Profiler
    from pyrospan_launch.agent.relay.server import Relay
    from pyrospan_launch.agent.spans.labels import LabelSwitch
    from pyrospan_launch.agent.spans.span_profiles import SpanProfileProcessor
    from pyrospan_launch.settings.config import Config
    from pyrospan_launch.settings.sampling import Sampling


# The state of each part of the agent (profiling, tracing, linking, children, exit
# handling): not asked for, waiting for the app's first use, running, or failed to start.
OFF = "off"
ARMED = "armed"
ON = "on"
FAILED = "failed"


class Agent:
    """What the agent holds for the life of one process."""

    def __init__(self) -> None:
        self.config: Config | None = None
        # One state per part of the bootstrap (OFF, ARMED, ON or FAILED).
        self.profiling = OFF
        self.tracing = OFF
        self.linking = OFF
        self.children = OFF
        self.exit_handling = OFF
        self.instrumentations: list[str] = []
        self.failures: list[str] = []
        # The warning filters before any app code: OpenTelemetry's parts load under them.
        self.startup_warnings = StartupWarnings()
        # Which CPU sampler runs and how root spans reach its samples: chosen with the
        # configuration, changed only by the profiler (towards py-spy, with a reason).
        self.sampling: Sampling | None = None
        # pyroscope-io in this process, once it runs.
        self.profiler: Profiler | None = None
        # The profiler's per-thread labels, once the profiler runs.
        self.labels: LabelSwitch | None = None
        # The profile relay, when profiles go through one (``pyrospan-run --check`` reads it).
        self.relay: Relay | None = None
        # The app's own thread tags, fitted to Pyroscope's limits, once the profiler runs.
        self.app_tags: AppTags | None = None
        # The span-profile processor (and its span-to-root map), once spans are linked
        # and labels follow the running context.
        self.processor: SpanProfileProcessor | None = None
        self.lifecycle = Lifecycle()
        # Work deferred to the app's first import of a module (OpenTelemetry, patches).
        self.import_hooks = ImportHooks()
        self.fork_warnings = ForkWarnings()
        self.worker_exits = WorkerExits(self.lifecycle)
        self.uwsgi_workers = UwsgiWorkers(self.lifecycle)
        # One service name for traces and profiles, also when the app names its profiles.
        self.service_names = ServiceNames(os.environ)
        self.provider_handover = ProviderHandover(self.service_names)
        # The filters on OpenTelemetry's export loggers, once tracing starts.
        self.export_filters: tuple[ExportErrorFilter, HeaderWarningFilter] | None = None

    def keep_sampling(self, sampling: Sampling) -> None:
        """Hold the sampler choice as it is now (the profiler calls this when it changes)."""
        self.sampling = sampling

    def keep_relay(self, relay: Relay) -> None:
        """Hold the relay the profiler started."""
        self.relay = relay

    def link_context(self, processor: SpanProfileProcessor, labels: LabelSwitch) -> None:
        """Have runtime contexts switch ``labels`` by ``processor``'s roots from now on."""
        self.processor = processor
        self.labels = labels

    def spans_follow(self, application_name: str) -> str:
        """The app's ``pyroscope.configure()`` named its profiles: the spans follow if they can.

        Returns how the notice about the app's call ends (see ServiceNames.profiles_named).
        """
        ours, theirs = self.provider_handover.global_providers()
        return self.service_names.profiles_named(application_name, ours, theirs)

    def watch_lifecycle(self) -> None:
        """Quiet pyrospan's fork warnings; send the last data at exit, SIGTERM, worker ends.

        In uWSGI, whose workers are forked from C, the fork hooks run in every worker.
        """
        self.fork_warnings.install(self.lifecycle)
        self.lifecycle.install_exit_handling()
        self.worker_exits.install()
        if in_uwsgi():
            self.uwsgi_workers.install()
        self.signal_watch_gives_way()

    def signal_watch_gives_way(self) -> None:
        """Give the wakeup descriptor back when Trio is imported: it warns if one is set.

        Trio sets its own on the main thread and wakes it for every signal.
        """
        watch = self.lifecycle.signal_watch
        if watch is not None:
            self.import_hooks.when_imported("trio", lambda module: watch.stop())


_current: Agent | None = None


def current() -> Agent | None:
    """The agent :func:`pyrospan_launch.agent.bootstrap.initialize` built in this process."""
    return _current


def make_current(agent: Agent | None) -> None:
    """Make ``agent`` the process's agent (the bootstrap does, once; tests put theirs)."""
    global _current
    _current = agent
