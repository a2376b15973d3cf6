"""An app that calls ``pyroscope.configure()`` itself: its settings win, its spans stay linked.

The spans' service.name follows the app's application name where it can
(:mod:`pyrospan_launch.agent.service_names`), so Grafana finds each span's profile.

pyroscope-io 1.4 runs one profiler per process: a second ``configure()`` returns False and
changes nothing.  Left alone, an app that configures the profiler in its own code would
keep pyrospan-run's settings without a word (another application name, server, tags).
So the app's first call replaces pyrospan-run's profiler: ``pyroscope.shutdown()`` sends
pyrospan-run's last window, then the app's arguments start the one profiler.  Span
labels are per thread in pyroscope-io and do not survive that restart, so the calling
thread's are set again; later root spans are labelled as before.

A backend that never answers holds ``shutdown()`` for its HTTP timeout (10 s measured),
so the hand-over runs on a helper thread and the app waits for it at most
:data:`HANDOVER_WAIT` seconds.  Later calls from the app behave as pyroscope-io's own
(refused), and a forked child restarts the profiler with the app's arguments.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable

from pyrospan_launch.agent import relay as relays
from pyrospan_launch.agent.main_signals import blocked_for_new_threads
from pyrospan_launch.agent.relay.server import TOKEN_HEADER, Relay
from pyrospan_launch.agent.spans.labels import LabelSwitch
from pyrospan_launch.common import log
from pyrospan_launch.settings.label_limits import (
    MAX_NAME_BYTES,
    MAX_VALUE_BYTES,
    fit_name,
    fit_value,
)

# typing for type checkers only: importing it costs every process milliseconds at start-up
# (docs/design.md, start-up imports).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Seconds the app's configure() may wait for pyrospan-run's profiler to hand over.
HANDOVER_WAIT = 0.5

# Calls from these modules are pyrospan-run's own: passed straight through.
_OUR_MODULES = ("pyrospan_launch.agent.profiler", __name__)


class ConfigureHandover:
    """Routes the app's ``pyroscope.configure()`` to replace pyrospan-run's profiler, once.

    With a relay running, the app's server becomes the relay's upstream and pyroscope-io
    pushes to the relay: the app's auth, tenant, headers and tags reach its server
    unchanged, and a push it cannot deliver is said as pyrospan-run's own.
    """

    def __init__(
        self,
        labels: LabelSwitch,
        relay: Relay | None = None,
        spans_follow: Callable[[str], str] | None = None,
    ) -> None:
        self._labels = labels
        self._relay = relay
        # Given the app's application name, makes the spans' service.name follow it where
        # it can and returns how the notice ends (None: no spans of ours to name).
        self._spans_follow = spans_follow
        self._original: Callable[..., Any] | None = None
        self._app_call: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        # Told, with the app's bound arguments, when the app's call takes the profiler over.
        self.on_handed_over: Callable[[dict[str, Any]], object] | None = None

    def install(self) -> None:
        """Wrap ``pyroscope.configure``; call it after pyrospan-run's profiler started."""
        import pyroscope

        if self._original is not None:
            return
        original = pyroscope.configure
        self._original = original

        @functools.wraps(original)
        def configure(*args: Any, **kwargs: Any) -> Any:
            caller = sys._getframe(1).f_globals.get("__name__")
            if caller in _OUR_MODULES or self._app_call is not None:
                return original(*args, **kwargs)
            return self._hand_over(original, args, kwargs)

        pyroscope.configure = configure

    def configure_again(self, relay: Relay | None = None) -> bool:
        """In a forked child: start the profiler with the app's arguments; False if none.

        ``relay`` is the child's own relay (None when it could not start there).
        """
        if self._app_call is None or self._original is None:
            return False
        args, kwargs = _through_relay(self._original, *self._app_call, relay)
        with relays.direct(relay):
            self._original(*args, **kwargs)
        return True

    def _hand_over(
        self, original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        import inspect  # not at start-up: it costs more than this whole module

        import pyroscope

        # Wrong arguments raise in the app's own call, as they would without pyrospan-run.
        bound = inspect.signature(original).bind(*args, **kwargs)
        args, kwargs = _fitted(original, args, kwargs)
        self._app_call = (args, kwargs)
        if self.on_handed_over is not None:
            self.on_handed_over(dict(bound.arguments))
        outcome: dict[str, Any] = {}
        done = threading.Event()

        relay = self._relay if self._relay is not None and self._relay.running else None

        def swap() -> None:
            try:
                pyroscope.shutdown()  # pyrospan-run's profiler sends its last window
                call_args, call_kwargs = _through_relay(original, args, kwargs, relay)
                with relays.direct(relay):
                    outcome["result"] = original(*call_args, **call_kwargs)
            except BaseException as exc:  # handed to the app's thread below when in time
                outcome["error"] = exc
            finally:
                done.set()

        with blocked_for_new_threads():
            threading.Thread(target=swap, name="pyrospan-profiler-handover", daemon=True).start()
        finished = done.wait(HANDOVER_WAIT)
        name = bound.arguments.get("application_name") or bound.arguments.get("app_name")
        shown = f" (application_name {name!r})" if name else ""
        ending = ""
        if isinstance(name, str) and name and self._spans_follow is not None:
            ending = self._spans_follow(name)
        log.warning(
            f"the app called pyroscope.configure() itself: its settings replace the "
            f"PYROSCOPE_* ones{shown}{ending}"
        )
        if not finished:
            log.debug("profiler hand-over still waiting for the old profiler's last upload")
            return True
        if "error" in outcome:
            raise outcome["error"]
        self._labels.reapply()  # the calling thread's span labels, lost with the old profiler
        return outcome.get("result")


def _fitted(
    original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The app's arguments with its tags and application name within Pyroscope's limits.

    pyroscope-io sends them as series labels, and the server rejects every profile of a
    series with one that does not fit (docs/design.md, labels within Pyroscope's limits).
    One warning names what changed.
    """
    import inspect

    bound = inspect.signature(original).bind(*args, **kwargs)
    changed: list[str] = []
    for key in ("application_name", "app_name"):
        name = bound.arguments.get(key)
        if isinstance(name, str) and fit_value(name) != name:
            bound.arguments[key] = fit_value(name)
            changed.append(f"{key} cut")
    tags = bound.arguments.get("tags")
    if isinstance(tags, dict):
        fitted: dict[Any, Any] = {}
        for tag, value in tags.items():
            if not isinstance(tag, str) or not isinstance(value, str):
                fitted[tag] = value  # pyroscope-io's own error, as without pyrospan-run
            elif fit_name(tag) is None:
                why = f"over {MAX_NAME_BYTES} bytes" if tag else "empty"
                changed.append(f"tag {tag[:40]!r} left out (its name is {why})")
            else:
                fitted[tag] = fit_value(value)
                if fitted[tag] != value:
                    changed.append(f"tag {tag} cut")
        bound.arguments["tags"] = fitted
    if not changed:
        return args, kwargs
    log.warning(
        f"the app's pyroscope.configure(): {', '.join(changed)} to fit Pyroscope's limits "
        f"on labels ({MAX_VALUE_BYTES} bytes of UTF-8 a value)"
    )
    return tuple(bound.args), dict(bound.kwargs)


def _through_relay(
    original: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    relay: Relay | None,
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The app's arguments, pushing to ``relay`` (which then forwards to the app's server)."""
    if relay is None:
        return args, kwargs
    import inspect

    bound = inspect.signature(original).bind(*args, **kwargs)
    bound.apply_defaults()
    relay.upstream = str(bound.arguments["server_address"]).rstrip("/")
    bound.arguments["server_address"] = relay.address
    headers = dict(bound.arguments.get("http_headers") or {})
    headers[TOKEN_HEADER] = relay.token
    bound.arguments["http_headers"] = headers
    return tuple(bound.args), dict(bound.kwargs)
