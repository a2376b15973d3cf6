"""Which distro and configurator start OpenTelemetry: the installed ones, else pyrospan-run's own.

An app set up for zero-code instrumentation has a distro and a configurator installed
(``opentelemetry-distro``, or a vendor's), and ``OTEL_PYTHON_DISTRO`` /
``OTEL_PYTHON_CONFIGURATOR`` may name one: those are used, as ``opentelemetry-instrument``
would.  Without any, pyrospan-run does what ``opentelemetry-distro`` would: the traces
exporter defaults to ``otlp`` and the SDK is configured by a subclass of the SDK's own
configurator, so every ``OTEL_*`` variable means the same either way.  That class is
private to the SDK, so it is detected once.  docs/design.md, "No distro dependency".

The launcher's ``--info`` reads this without loading any entry point; the agent loads them.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

TYPE_CHECKING = False
if TYPE_CHECKING:
    from importlib.metadata import EntryPoint
    from types import ModuleType
    from typing import Any

DISTRO_GROUP = "opentelemetry_distro"
DISTRO_VARIABLE = "OTEL_PYTHON_DISTRO"
CONFIGURATOR_GROUP = "opentelemetry_configurator"
CONFIGURATOR_VARIABLE = "OTEL_PYTHON_CONFIGURATOR"

SDK_CONFIGURATION_MODULE = "opentelemetry.sdk._configuration"
SDK_CONFIGURATOR_CLASS = "_OTelSDKConfigurator"

# What opentelemetry-distro's distro sets when the variable is absent.  Its other defaults
# (metrics and logs exporters, OTLP protocol) are pyrospan-run's own choices anyway
# (pyrospan_launch.agent.tracing.DEFAULTS), set before any distro runs.
DISTRO_DEFAULTS = {"OTEL_TRACES_EXPORTER": "otlp"}


class SDKConfiguratorMissing(RuntimeError):
    """No configurator is installed and the SDK has no configurator class to start with."""


def find(group: str, variable: str, environ: Mapping[str, str]) -> EntryPoint | None:
    """The entry point of ``group`` named by ``variable``, or the first one when unset.

    None when the variable is unset and nothing is installed; LookupError when the
    variable names one that is not installed.
    """
    from importlib.metadata import entry_points

    wanted = environ.get(variable) or None
    found = list(entry_points(group=group))
    for entry_point in found:
        if wanted is None or entry_point.name == wanted:
            return entry_point
    if wanted is not None:
        installed = ", ".join(sorted(ep.name for ep in found)) or "none"
        raise LookupError(f"{variable}={wanted!r} is not installed (installed: {installed})")
    return None


def set_distro_defaults(environ: MutableMapping[str, str]) -> None:
    """Without a distro: the defaults opentelemetry-distro would set, set the same way.

    ``setdefault``, as the distro does: a variable present, even empty, is the user's.
    """
    for name, value in DISTRO_DEFAULTS.items():
        environ.setdefault(name, value)


def sdk_configurator_base(module: ModuleType | None = None) -> type[Any] | None:
    """The SDK's configurator class in ``module`` (the installed SDK's by default), or None.

    Checked for what pyrospan-run calls on it: a class with ``configure``.
    """
    if module is None:
        import importlib

        try:
            module = importlib.import_module(SDK_CONFIGURATION_MODULE)
        except ImportError:
            return None
    base = getattr(module, SDK_CONFIGURATOR_CLASS, None)
    if not isinstance(base, type) or not callable(getattr(base, "configure", None)):
        return None
    return base


class OwnConfigurator:
    """pyrospan-run's configurator for apps without one: the SDK's, subclassed once.

    The SDK asks that its configurator be subclassed rather than used itself, as
    opentelemetry-distro does with a subclass that adds nothing.  The subclass is made on
    first use, so that nothing of the SDK loads before OpenTelemetry starts.
    """

    def __init__(self, module: ModuleType | None = None) -> None:
        self._module = module
        self._made: type[Any] | None = None
        self._detected = False

    def available(self) -> bool:
        """True when the SDK in use has the configurator class (detected once)."""
        return self._subclass() is not None

    def configurator(self) -> type[Any]:
        """The configurator class; SDKConfiguratorMissing when the SDK has none."""
        made = self._subclass()
        if made is None:
            raise SDKConfiguratorMissing(
                f"no OpenTelemetry configurator installed and {SDK_CONFIGURATION_MODULE} has no "
                f"{SDK_CONFIGURATOR_CLASS} to configure the SDK with: install "
                "opentelemetry-distro, or set OTEL_PYTHON_CONFIGURATOR to an installed one"
            )
        return made

    def _subclass(self) -> type[Any] | None:
        if not self._detected:
            self._detected = True
            base = sdk_configurator_base(self._module)
            if base is not None:
                self._made = type("PyrospanConfigurator", (base,), {"__module__": __name__})
        return self._made


OWN = OwnConfigurator()


def _origin(entry_point: EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    package = f"{dist.name} {dist.version}" if dist is not None else "unknown package"
    return f"{entry_point.name} ({entry_point.value}, {package})"


def describe(environ: Mapping[str, str], own: OwnConfigurator = OWN) -> tuple[str, str]:
    """What will start OpenTelemetry: one line for the distro and one for the configurator."""
    try:
        distro = find(DISTRO_GROUP, DISTRO_VARIABLE, environ)
        distro_line = (
            _origin(distro)
            if distro is not None
            else "none installed: pyrospan-run's defaults (OTEL_TRACES_EXPORTER=otlp if unset)"
        )
    except LookupError as exc:
        distro_line = f"tracing will fail to start: {exc}"
    try:
        configurator = find(CONFIGURATOR_GROUP, CONFIGURATOR_VARIABLE, environ)
        if configurator is not None:
            configurator_line = _origin(configurator)
        elif own.available():
            configurator_line = (
                f"none installed: pyrospan-run configures the SDK with "
                f"{SDK_CONFIGURATION_MODULE}.{SDK_CONFIGURATOR_CLASS}"
            )
        else:
            configurator_line = (
                f"none installed, and the SDK has no {SDK_CONFIGURATOR_CLASS}: tracing will be "
                "off; install opentelemetry-distro"
            )
    except LookupError as exc:
        configurator_line = f"tracing will fail to start: {exc}"
    return distro_line, configurator_line
