"""The warning filters the interpreter started with, for loading OpenTelemetry's parts under.

``opentelemetry-instrument`` sets up the SDK and loads every instrumentation before the
app runs, so under the filters Python starts with (its defaults, ``-W``,
``PYTHONWARNINGS``).  pyrospan-run does both when the app first imports a library, by
which time the app may have set filters of its own: under ``simplefilter("error")`` (as
pytest's ``filterwarnings = error`` does) a DeprecationWarning inside an instrumentation
became an error and the instrumentation was skipped.  :class:`StartupWarnings` keeps the
filters of the interpreter's start and applies them while our code loads, then puts the
app's back.
"""

from __future__ import annotations

import warnings

TYPE_CHECKING = False  # typing is not imported at start-up (docs/design.md)
if TYPE_CHECKING:
    from typing import Any


class StartupWarnings:
    """The filters at the bootstrap, before any app code; :meth:`applied` loads under them."""

    def __init__(self, filters: list[Any] | None = None) -> None:
        self._startup = list(warnings.filters if filters is None else filters)
        # Filters that code loaded under them added (the SDK ignores its own deprecations
        # at import): opentelemetry-instrument has them among the start-up filters.
        self._kept: list[Any] = []

    def applied(self) -> _Applied:
        """A context manager: within, the start-up filters; after, the app's, as they were.

        Filters the loaded code added are kept, where ``opentelemetry-instrument`` has
        them: among the start-up filters, behind those the app put in front of them.
        The filters are process-wide: another thread that warns meanwhile meets the
        start-up filters too, for the few milliseconds an instrumentation takes to load.
        """
        return _Applied(self)

    def _ours(self) -> list[Any]:
        return self._kept + self._startup

    def _keep(self, added: list[Any]) -> None:
        self._kept[:0] = added
        app: Any = warnings.filters  # a list, typed as a Sequence
        ours = self._ours()
        boundary = next((at for at, entry in enumerate(app) if entry in ours), len(app))
        app[boundary:boundary] = [entry for entry in added if entry not in app]
        # Tells the warning registries the filters changed, by the public way: entering and
        # leaving catch_warnings does it (and puts back the list just edited).
        with warnings.catch_warnings():
            pass


class _Applied:
    def __init__(self, filters: StartupWarnings) -> None:
        self._filters = filters
        self._saved = warnings.catch_warnings()

    def __enter__(self) -> None:
        self._saved.__enter__()
        # resetwarnings tells the warning registries the filters changed; nothing can warn
        # between it and the refill.
        warnings.resetwarnings()
        filters: Any = warnings.filters  # a list, typed as a Sequence
        filters.extend(self._filters._ours())

    def __exit__(self, *exc_info: Any) -> None:
        ours = self._filters._ours()
        added = [entry for entry in warnings.filters if entry not in ours]
        self._saved.__exit__(*exc_info)
        if added:
            self._filters._keep(added)
