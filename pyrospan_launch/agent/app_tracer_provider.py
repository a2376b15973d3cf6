"""An app that sets its own TracerProvider: it replaces pyrospan-run's, and its spans are linked.

OpenTelemetry lets the global TracerProvider be set once; a later
``trace.set_tracer_provider()`` is refused with "Overriding of current TracerProvider is
not allowed".  pyrospan-run sets one as soon as the app imports OpenTelemetry, so an app
that builds its own (its resource, its exporter) would lose it without a word: its spans
would go to the OTEL_* exporter, and its own exporter would get nothing.

The app's provider wins instead, as it would without pyrospan-run.  When the app sets an
SDK TracerProvider while pyrospan-run's is the global one:

* it becomes the global provider, and pyrospan-run's span-profile processor is added to
  it, so its root spans are linked to their CPU samples;
* tracers handed out before (instrumentations loaded earlier keep theirs) feed the
  app's span processors from then on, so every span goes one way, to the app's exporter;
  such spans keep the resource they were created with;
* pyrospan-run's own exporter is shut down, on a helper thread so the app never waits.

One ``pyrospan:`` line says so.  A provider that is not the SDK's (a no-op one) is used
as well, without links; a second call from the app is OpenTelemetry's to refuse.
"""

from __future__ import annotations

import functools
import threading

from pyrospan_launch.agent.main_signals import blocked_for_new_threads
from pyrospan_launch.agent.service_names import ServiceNames
from pyrospan_launch.common import log

# The agent builds a ProviderHandover at start-up: typing is for type checkers only
# (docs/design.md, start-up imports).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class ProviderHandover:
    """Lets a TracerProvider the app sets replace pyrospan-run's, once per process."""

    def __init__(self, service_names: ServiceNames | None = None) -> None:
        self._installed = False
        self._taken_over = False
        self._ours: Any = None
        # Checks a taken-over provider's service.name against the profiles' service_name.
        self._service_names = service_names

    def global_providers(self) -> tuple[Any, Any]:
        """(pyrospan-run's TracerProvider, the app's): whichever is the global SDK one.

        Both None before OpenTelemetry started, or when the global one is not the SDK's.
        """
        import sys

        if "opentelemetry.sdk.trace" not in sys.modules:
            return None, None
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            return None, None
        if provider is self._ours:
            return provider, None
        return None, provider

    def install(self, ours: Any, processor: Any = None) -> None:
        """Let a TracerProvider the app sets replace ``ours``; ``processor`` links its spans.

        ``ours`` is pyrospan-run's SDK TracerProvider, already global (None: nothing to
        do); ``processor`` the span-profile processor on it (None when profiling is off).
        Only the first call counts.
        """
        import opentelemetry.trace as trace_api

        if self._installed or ours is None:
            return
        self._installed = True
        self._ours = ours
        original = trace_api.set_tracer_provider

        @functools.wraps(original)
        def set_tracer_provider(tracer_provider: Any) -> None:
            if (
                self._taken_over
                or tracer_provider is ours
                or trace_api.get_tracer_provider() is not ours
            ):
                original(tracer_provider)
                return
            self._take_over(trace_api, ours, tracer_provider, processor)

        trace_api.set_tracer_provider = set_tracer_provider

    def _take_over(self, trace_api: Any, ours: Any, theirs: Any, processor: Any) -> None:
        from opentelemetry.sdk.trace import TracerProvider

        from pyrospan_launch.agent import otel_compat

        self._taken_over = True
        # The one global provider from now on (what set_tracer_provider would have done).
        if not otel_compat.make_global(trace_api, theirs):
            log.warning(
                "the app set its own TracerProvider, but this OpenTelemetry release does not "
                "let it replace pyrospan-run's: spans go to the OTEL_* exporter, not the app's"
            )
            return
        sdk = isinstance(theirs, TracerProvider)
        if sdk and processor is not None:
            theirs.add_span_processor(processor)
        replaced = otel_compat.redirect_spans(ours, theirs if sdk else None)
        if replaced is None:
            log.debug("tracers handed out before the app's provider keep pyrospan-run's exporter")
            replaced = ()
        leftover = [p for p in replaced if p is not processor]
        if leftover:
            with blocked_for_new_threads():
                threading.Thread(
                    target=_shut_down,
                    args=(leftover,),
                    name="pyrospan-provider-handover",
                    daemon=True,
                ).start()
        kind = type(theirs).__name__
        if sdk:
            linked = ""
            if processor is not None:
                names = self._service_names
                mismatch = names.provider_taken_over(theirs) if names is not None else ""
                linked = (
                    f"; its root spans carry profile ids, {mismatch}"
                    if mismatch
                    else "; its root spans are linked to profiles"
                )
            log.warning(
                f"the app set its own TracerProvider: it replaces pyrospan-run's (the app's "
                f"exporter and resource are used, not the OTEL_* ones){linked}"
            )
        else:
            log.warning(
                f"the app set its own TracerProvider ({kind}), not the OpenTelemetry SDK's: "
                "it is used, and spans are not linked to profiles"
            )


def _shut_down(processors: list[Any]) -> None:
    for span_processor in processors:
        try:
            span_processor.shutdown()
        except Exception as exc:
            log.debug(f"pyrospan-run's span processor did not shut down: {exc}")
