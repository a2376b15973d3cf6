"""Start OpenTelemetry the way zero-code instrumentation does: distro, configurator, instrumentors.

The distro and configurator are the ones installed (an app's zero-code set-up, or those
named by ``OTEL_PYTHON_DISTRO`` / ``OTEL_PYTHON_CONFIGURATOR``); without any, pyrospan-run
does what ``opentelemetry-distro`` would (:mod:`pyrospan_launch.common.otel_setup`), so
every standard ``OTEL_*`` variable keeps its documented meaning.  pyrospan-run only
changes defaults the user has not set: OTLP over http/protobuf (the distro would pick
gRPC, which is not installed), no metrics or logs exporters (Tempo and Pyroscope take
neither, and an exporter with nowhere to send would complain every minute), and the
``process`` resource detector, so that the spans of each process (each worker) carry its
``process.pid``.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable
from types import ModuleType

from pyrospan_launch.agent.import_hooks import ImportHooks
from pyrospan_launch.agent.lifecycle import Lifecycle
from pyrospan_launch.agent.main_signals import (
    blocked_for_new_threads,
    blocked_for_threads_forks_restart,
)
from pyrospan_launch.common import log, otel_setup
from pyrospan_launch.settings import reads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from importlib.metadata import EntryPoint
    from typing import Any

    from pyrospan_launch.agent.startup_warnings import StartupWarnings
    from pyrospan_launch.common.skipped import SkippedRecord

# importlib.metadata and the instrumentation machinery load only when OpenTelemetry
# starts: a process that never uses it does not pay for them.  typing is for type
# checkers only (docs/design.md, start-up imports).

# The opentelemetry_context entry point of pyrospan_launch.agent.spans.span_context (see pyproject).
CONTEXT_ENTRY_POINT = "pyrospan_contextvars_context"

DEFAULTS = {
    # process.pid and friends on the resource; the SDK detects them again in every forked
    # worker, so each worker's spans carry its own pid (the profiler's `pid` label).
    "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "process",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
}


def _pick(group: str, variable: str) -> Any:
    """The class of the entry point of ``group`` named by ``variable``, or the first; or None."""
    entry_point = otel_setup.find(group, variable, os.environ)
    return None if entry_point is None else entry_point.load()


def select_label_switching_context(hooks: ImportHooks) -> bool:
    """Make OpenTelemetry use pyrospan's runtime context when it loads; False if it cannot.

    OpenTelemetry reads ``OTEL_PYTHON_CONTEXT`` once, when ``opentelemetry.context``
    first loads (now, or later when the SDK starts on first use).  The variable is taken
    away again right after that, so that programs of other interpreters the app starts
    later never see a context name they cannot load.
    """
    chosen = os.environ.get("OTEL_PYTHON_CONTEXT")
    if chosen and chosen != CONTEXT_ENTRY_POINT:
        log.info(
            f"OTEL_PYTHON_CONTEXT={chosen} is the app's choice: span labels follow span "
            "start and end (asyncio and thread pools are not attributed)"
        )
        return False
    if "opentelemetry.context" in sys.modules:
        if not _label_switching_context_active():
            log.info("OpenTelemetry was loaded before the bootstrap: labels follow span start")
            return False
        return True
    os.environ["OTEL_PYTHON_CONTEXT"] = CONTEXT_ENTRY_POINT

    def forget(module: object) -> None:
        if os.environ.get("OTEL_PYTHON_CONTEXT") == CONTEXT_ENTRY_POINT:
            del os.environ["OTEL_PYTHON_CONTEXT"]

    hooks.when_imported("opentelemetry.context", forget)
    return True


def start_on_first_use(
    start: Callable[[], None], modules: Iterable[str], hooks: ImportHooks
) -> list[str]:
    """Run ``start`` once, when the app first imports one of ``modules`` or the OpenTelemetry API.

    Until then nothing of OpenTelemetry is imported: a program that never uses an
    instrumented library nor OpenTelemetry itself pays nothing for tracing.  ``start``
    runs inside that first import, before the importing code gets the module, so an
    instrumented library is instrumented before anything uses it.  Returns the modules
    watched (those not imported yet).
    """
    lock = threading.RLock()
    started = False
    watching: set[str] = set()  # the modules whose import runs on_import when complete

    def on_import(module: ModuleType) -> None:
        nonlocal started
        # The module itself still counts as importing while its hooks run: leave it out.
        busy = [name for name in _modules_importing() if name != module.__name__]
        waits = [name for name in busy if name.startswith("opentelemetry") or name in watching]
        if waits:
            # A library's own import of the OpenTelemetry API (FastAPI's telemetry module
            # imports opentelemetry._logs, which imports opentelemetry.trace): starting the
            # SDK now would import modules that are half-initialised.  The outermost one is
            # watched too, and starts it when it is complete.
            log.debug(f"OpenTelemetry start waits for {', '.join(waits)} to finish importing")
            return
        stdlib = [name for name in busy if name.partition(".")[0] in _STDLIB]
        if stdlib:
            # A standard module that imports the trigger (http.cookiejar imports
            # urllib.request): the SDK's own imports need it whole.
            log.debug(f"OpenTelemetry start waits for {stdlib[-1]} to finish importing")
            hooks.when_done_importing(stdlib[-1], on_import)
            return
        with lock:
            if started:
                return
            started = True
        log.debug(f"OpenTelemetry starts: first import of {module.__name__}")
        start()

    api = ["opentelemetry.trace", "opentelemetry._logs", "opentelemetry.metrics"]
    watched = [m for m in dict.fromkeys([*modules, *api]) if m not in sys.modules]
    watching.update(watched)
    for module in watched:
        hooks.when_imported(module, on_import)
    return watched


def label_switching_context_active() -> bool:
    """True when OpenTelemetry's runtime context is pyrospan's."""
    return _label_switching_context_active()


def _label_switching_context_active() -> bool:
    import opentelemetry.context as otel_context

    from pyrospan_launch.agent.spans.span_context import LabelSwitchingRuntimeContext

    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    return isinstance(runtime, LabelSwitchingRuntimeContext)


def _modules_importing() -> list[str]:
    """Modules whose code is still running (imported, not finished), outermost first."""
    return [
        name
        for name, module in list(sys.modules.items())
        if getattr(getattr(module, "__spec__", None), "_initializing", False)
    ]


_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ())) - {"__main__"}


def set_defaults() -> None:
    """pyrospan-run's defaults for OpenTelemetry variables the user has not set."""
    for name, value in DEFAULTS.items():
        # Empty counts as unset, as for pyrospan-run's own settings (and the SDK's).
        if not os.environ.get(name, "").strip():
            os.environ[name] = value
    reads.forget_blank_sampler(os.environ)
    from pyrospan_launch.common import trust

    # The span exporter (requests) never reads SSL_CERT_FILE/SSL_CERT_DIR, which the
    # profiles honour: one variable for both signals (see common/trust.py).
    certificate = trust.span_certificate_default(os.environ)
    if certificate is not None:
        os.environ["OTEL_EXPORTER_OTLP_CERTIFICATE"] = certificate


def start(
    lifecycle: Lifecycle,
    hooks: ImportHooks,
    *,
    lazy: bool = True,
    plan: list[tuple[EntryPoint, list[str]]] | None = None,
    own: otel_setup.OwnConfigurator = otel_setup.OWN,
    filters: StartupWarnings | None = None,
    skipped: SkippedRecord | None = None,
) -> list[str]:
    """Configure the SDK and arrange instrumentation; returns the instrumentations enabled."""
    set_defaults()

    distro_class = _pick(otel_setup.DISTRO_GROUP, otel_setup.DISTRO_VARIABLE)
    if distro_class is None:
        from opentelemetry.instrumentation.distro import DefaultDistro  # type: ignore[attr-defined]

        otel_setup.set_distro_defaults(os.environ)
        distro_class = DefaultDistro
    distro = distro_class()
    distro.configure()
    log.debug(f"distro {type(distro).__name__} configured")

    configurator_class = _pick(otel_setup.CONFIGURATOR_GROUP, otel_setup.CONFIGURATOR_VARIABLE)
    if configurator_class is None:
        # Raises SDKConfiguratorMissing, one line, before anything is instrumented.
        configurator_class = own.configurator()
    from opentelemetry.instrumentation.version import __version__

    # The SDK's export threads (span batches, metric readers) start here, and again in each
    # forked child from the SDK's at-fork hooks: with the app's signals blocked, as
    # pyrospan's own threads (main_signals).
    with blocked_for_new_threads(), blocked_for_threads_forks_restart():
        configurator_class().configure(auto_instrumentation_version=__version__)
    log.debug(f"configurator {configurator_class.__name__} set up the SDK")

    # Sends the last span batch; the SDK's own exit handler waits up to 30 s for it.
    from pyrospan_launch.agent.export_errors import SPANS_EXIT_CALL

    lifecycle.on_exit(SPANS_EXIT_CALL, _shutdown_tracer_provider)
    from pyrospan_launch.agent import instrumentations

    return instrumentations.install(
        distro, hooks, lazy=lazy, plan=plan, filters=filters, skipped=skipped
    )


def sdk_tracer_provider() -> Any:
    """The global SDK TracerProvider, or None when the global one is not the SDK's."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    provider = trace.get_tracer_provider()
    return provider if isinstance(provider, TracerProvider) else None


def _shutdown_tracer_provider() -> None:
    provider = sdk_tracer_provider()
    if provider is not None:
        provider.shutdown()
