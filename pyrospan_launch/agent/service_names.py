"""One service name for traces and profiles, also when the app names its profiles itself.

Grafana's "Profiles for this span" looks a span's profile up under the Pyroscope
``service_name`` equal to the span's resource ``service.name``.  pyrospan-run gives both
the same name, but an app written for pyroscope-io calls
``pyroscope.configure(application_name=...)`` itself, and that name wins for profiles.

When the user named no service (the launcher derived one from the command), the spans
follow the app's name: ``OTEL_SERVICE_NAME`` becomes it for every TracerProvider made
from then on (pyrospan-run's, when OpenTelemetry starts later; the app's own; those of
processes the app starts), and pyrospan-run's provider, if it already runs, is renamed
in place.  Where that cannot be done (the app's own TracerProvider fixed its resource
before, or the user set ``OTEL_SERVICE_NAME`` to another name), the notice names both
names and what to set, and never claims a link Grafana will not find.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from pyrospan_launch.agent.otel_compat import SERVICE_NAME, rename_service
from pyrospan_launch.settings import reads
from pyrospan_launch.settings.config import DERIVED_SERVICE_NAME, service_name_derived

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _service_name(provider: Any) -> str:
    return str(provider.resource.attributes.get(SERVICE_NAME, ""))


class ServiceNames:
    """What the profiles of this process are called, and the spans kept in step with it."""

    def __init__(self, environ: MutableMapping[str, str]) -> None:
        self._environ = environ
        # The running profiler's application name (None: no profiler of ours ran).
        self.profile_name: str | None = None
        # Every value OTEL_SERVICE_NAME had here: a resource named otherwise was named in code.
        self._env_names = {reads.service_name_set(environ)}
        self._app_named = False  # the app's pyroscope.configure() named the profiles

    def profiles_named(self, name: str, ours: Any, theirs: Any) -> str:
        """The app's ``pyroscope.configure()`` named its profiles ``name``: follow it.

        ``ours`` is pyrospan-run's TracerProvider when it is the global one, ``theirs``
        the app's own when that is; None for either when it is not (OpenTelemetry not
        started yet: both None).  Returns how the notice about the app's call ends.
        """
        self.profile_name = name
        self._app_named = True
        environ = self._environ
        before = reads.service_name_set(environ)
        followed = False
        if service_name_derived(environ) and before != name:
            environ[reads.SERVICE_NAME] = environ[DERIVED_SERVICE_NAME] = name
            self._env_names.add(name)
            followed = ours is not None and rename_service(ours.resource, name)
        exporting = theirs if theirs is not None else ours
        spans = (
            _service_name(exporting) if exporting is not None else reads.service_name_set(environ)
        )
        if spans == name:
            if followed or (exporting is None and before != name):
                return f"; spans take service.name {name!r} too, so span profiles stay linked"
            return "; span profiles stay linked"
        return f"; {self._mismatch(spans, name, app_coded=spans not in self._env_names)}"

    def provider_taken_over(self, theirs: Any) -> str:
        """The app's TracerProvider replaced pyrospan-run's: "" if its spans match the profiles.

        Otherwise the words that say they do not, for the notice about the take-over.
        """
        spans = _service_name(theirs)
        if self.profile_name is None or spans == self.profile_name:
            return ""
        return self._mismatch(spans, self.profile_name, app_coded=spans not in self._env_names)

    def _mismatch(self, spans: str, profiles: str, *, app_coded: bool) -> str:
        """Both names, and what makes them one (the variable, unless the app hard-codes both)."""
        if not self._app_named:
            fix = f"set PYROSCOPE_APPLICATION_NAME={spans}"
        elif not app_coded:
            fix = f"set OTEL_SERVICE_NAME={profiles}"
        else:
            fix = "give the app's TracerProvider resource and its pyroscope.configure() one name"
        return (
            f"but spans have service.name {spans!r} and profiles service_name {profiles!r}, "
            f"so Grafana finds no profile for a span: {fix}"
        )
