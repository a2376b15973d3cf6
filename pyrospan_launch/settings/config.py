"""Resolve the environment into what each part of the bootstrap will do.

A bad value turns off only the part it belongs to (a bad sample rate stops profiling,
not tracing), and the reason is kept so the launcher and ``--info`` can say it in one
line.  Both the launcher (before exec) and the bootstrap (in the child) call
:func:`resolve`, so they always agree.
"""

from __future__ import annotations

import os
from collections import namedtuple
from collections.abc import Mapping, Sequence

from pyrospan_launch.settings import label_limits, registry, sampling
from pyrospan_launch.settings.parsers import url_userinfo
from pyrospan_launch.settings.registry import SettingError
from pyrospan_launch.settings.sampling import Sampling

# The launcher and every child resolve their configuration at start-up: typing, which
# costs them milliseconds to import, is for type checkers only (docs/design.md).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple

# Resource attributes that also become profile labels, so that a trace and its profile
# carry the same identity in Grafana (dots are not allowed in Pyroscope label names).
RESOURCE_LABELS = {
    "service.namespace": "service_namespace",
    "service.version": "service_version",
    "deployment.environment": "deployment_environment",
    "deployment.environment.name": "deployment_environment_name",
}

# What OpenTelemetry's SDK calls a service that names none.
UNKNOWN_SERVICE = "unknown_service"

# The launcher sets OTEL_SERVICE_NAME from the command when the user names no service,
# and this variable to the same value, so the agent can tell the name is only derived.
DERIVED_SERVICE_NAME = "_PYROSPAN_DERIVED_SERVICE_NAME"


def service_name_derived(environ: Mapping[str, str]) -> bool:
    """True when OTEL_SERVICE_NAME is the name the launcher derived, not the user's."""
    try:
        name = registry.setting("OTEL_SERVICE_NAME").read(environ)
    except SettingError:
        return False
    return bool(name) and environ.get(DERIVED_SERVICE_NAME) == name


if TYPE_CHECKING:

    class _ProfilerFields(NamedTuple):
        application_name: str
        server_address: str
        sample_rate: int
        upload_interval: int
        tags: dict[str, str]
        basic_auth_user: str
        basic_auth_password: str
        tenant_id: str
        http_headers: dict[str, str]
        oncpu: bool
        profile_memory: bool

    class _ConfigFields(NamedTuple):
        tracing: bool
        profiling: bool
        strict: bool
        eager_instrumentation: bool
        span_name_label: bool
        trace_id_label: bool
        log_level: str
        service_name: str
        service_name_source: str
        profiler: ProfilerConfig | None
        errors: tuple[SettingError, ...]
        off_reasons: dict[str, str]
        invalid: dict[str, str]
        # The sampler and span labels this process runs, chosen once by resolve().
        sampling: Sampling
        children: bool = True
        local: bool = False
        report_dir: str = "pyrospan-report"
        span_labels: str = "frames"
        notices: tuple[str, ...] = ()
        sampler: str = "auto"
        exit_timeout: float = 0.5

else:
    # What typing.NamedTuple would build from the fields above, without importing typing.
    _ProfilerFields = namedtuple(
        "_ProfilerFields",
        "application_name server_address sample_rate upload_interval tags basic_auth_user "
        "basic_auth_password tenant_id http_headers oncpu profile_memory",
    )
    _ConfigFields = namedtuple(
        "_ConfigFields",
        "tracing profiling strict eager_instrumentation span_name_label trace_id_label "
        "log_level service_name service_name_source profiler errors off_reasons invalid "
        "sampling children local report_dir span_labels notices sampler exit_timeout",
        defaults=(
            True,
            False,
            "pyrospan-report",
            "frames",
            (),
            "auto",
            0.5,
        ),
    )


class ProfilerConfig(_ProfilerFields):
    """Arguments for ``pyroscope.configure``, already validated."""

    __slots__ = ()


class Config(_ConfigFields):
    """Everything the bootstrap needs, and why a part is off.

    ``notices`` are the lines about values changed to fit Pyroscope's limits: reported
    with the bad values (strict mode stops on them too), though nothing is turned off.
    """

    __slots__ = ()


def _read(
    setting: registry.Setting,
    environ: Mapping[str, str],
    errors: list[SettingError],
    fallback: Any = None,
) -> Any:
    try:
        return setting.read(environ)
    except SettingError as exc:
        errors.append(exc)
        return setting.default if fallback is None else fallback


def _field(
    field: str, environ: Mapping[str, str], errors: list[SettingError], fallback: Any = None
) -> Any:
    """The value of the setting that fills ``field``; a bad one is kept in ``errors``."""
    return _read(registry.BY_FIELD[field], environ, errors, fallback)


def service_name_of(environ: Mapping[str, str]) -> tuple[str | None, str]:
    """The service name the environment sets, and which variable set it."""
    explicit = (environ.get("OTEL_SERVICE_NAME") or "").strip()
    if explicit:
        return explicit, "OTEL_SERVICE_NAME"
    try:
        attributes = registry.setting("OTEL_RESOURCE_ATTRIBUTES").read(environ)
    except SettingError:
        attributes = {}
    if attributes.get("service.name"):
        return str(attributes["service.name"]), "OTEL_RESOURCE_ATTRIBUTES"
    return None, ""


_PYTHON_OPTIONS_WITH_VALUE = {"-W", "-X", "-Q"}


def derive_service_name(command: Sequence[str]) -> str:
    """A readable service name from the command line: the script, module or program name.

    ``python app.py`` gives ``app``, ``python -m uvicorn ...`` gives ``uvicorn``,
    ``gunicorn app:wsgi`` gives ``gunicorn``.  Used only when the user names none.
    """
    if not command:
        return UNKNOWN_SERVICE
    program = os.path.basename(command[0])
    if not program.startswith("python"):
        return program or UNKNOWN_SERVICE
    args = list(command[1:])
    while args:
        arg = args.pop(0)
        if arg == "-m" and args:
            return args[0]
        if arg.startswith("-m") and len(arg) > 2:
            return arg[2:]
        if arg == "-c" or arg.startswith("-c"):
            return "python"
        if arg in _PYTHON_OPTIONS_WITH_VALUE:
            if args:
                args.pop(0)
            continue
        if arg == "-":
            return "python"
        if not arg.startswith("-"):
            stem = os.path.splitext(os.path.basename(arg.rstrip("/")))[0]
            return stem or "python"
    return "python"


def resolve(environ: Mapping[str, str]) -> Config:
    """Read every registered setting and decide what will run."""
    errors: list[SettingError] = []
    off: dict[str, str] = {}
    invalid: dict[str, str] = {}

    log_level = _field("log_level", environ, errors)
    strict = _field("strict", environ, errors)
    eager = _field("eager_instrumentation", environ, errors)
    children = _field("children", environ, errors)
    span_name_label = _field("span_name_label", environ, errors)
    trace_id_label = _field("trace_id_label", environ, errors)
    span_labels = _field("span_labels", environ, errors)
    sampler = _field("sampler", environ, errors)
    exit_timeout = _field("exit_timeout", environ, errors)
    tracing_wanted = _field("tracing", environ, errors, fallback=False)
    profiling_wanted = _field("profiling", environ, errors, fallback=False)

    service_name, source = service_name_of(environ)
    if service_name is None:
        service_name, source = UNKNOWN_SERVICE, "default"

    tracing_errors: list[SettingError] = []
    for s in registry.ALL:
        if s.group == registry.TRACING:
            _read(s, environ, tracing_errors)
    errors.extend(tracing_errors)
    tracing = bool(tracing_wanted) and not tracing_errors
    if not tracing_wanted:
        off["tracing"] = "PYROSPAN_TRACING is false"
    elif tracing_errors:
        off["tracing"] = invalid["tracing"] = f"{tracing_errors[0].setting.name} is not valid"
    elif _read(registry.setting("OTEL_SDK_DISABLED"), environ, []):
        off["tracing"] = "OTEL_SDK_DISABLED is true"

    profiling_errors: list[SettingError] = []
    notices: list[str] = []
    # Labels pyrospan-run adds to every span sample: span_name, and trace_id if asked.
    span_labels_added = bool(span_name_label) + bool(trace_id_label)
    profiler = _profiler_config(
        environ, service_name, source, profiling_errors, notices, span_labels_added
    )
    errors.extend(profiling_errors)
    profiling = bool(profiling_wanted) and profiler is not None
    if not profiling_wanted:
        off["profiling"] = "PYROSPAN_PROFILING is false"
    elif profiler is None:
        off["profiling"] = invalid["profiling"] = f"{profiling_errors[0].setting.name} is not valid"

    local_errors: list[SettingError] = []
    local_wanted = _field("local", environ, local_errors)
    report_dir = _field("report_dir", environ, local_errors)
    errors.extend(local_errors)
    local = bool(local_wanted) and not local_errors
    if local_errors and (local_wanted or (environ.get("PYROSPAN_LOCAL") or "").strip()):
        off["local mode"] = invalid["local mode"] = f"{local_errors[0].setting.name} is not valid"

    return Config(
        tracing=tracing,
        profiling=profiling,
        strict=bool(strict),
        eager_instrumentation=bool(eager),
        span_name_label=bool(span_name_label),
        trace_id_label=bool(trace_id_label),
        log_level=str(log_level),
        service_name=service_name,
        service_name_source=source,
        profiler=profiler if profiling else None,
        errors=tuple(errors),
        off_reasons=off,
        children=bool(children),
        invalid=invalid,
        local=local,
        report_dir=str(report_dir),
        span_labels=str(span_labels),
        notices=tuple(notices) if profiling else (),
        sampler=str(sampler),
        exit_timeout=float(exit_timeout),
        sampling=_sampling(str(sampler), str(span_labels), tracing, profiler),
    )


def _sampling(asked: str, labels: str, tracing: bool, profiler: ProfilerConfig | None) -> Sampling:
    """The sampler this process runs, chosen once with the rest of the configuration."""
    return sampling.choose(
        asked,
        labels,
        tracing=tracing,
        oncpu=profiler.oncpu if profiler is not None else True,
    )


def split_credentials(url: str) -> tuple[str, str, str]:
    """``http://user:pass@host/p`` -> (``http://host/p``, user, password), percent-decoded.

    The profiler gets the URL without them and the pair as basic auth, which is what
    pyroscope-io does with a URL that holds them; so the address never carries a password
    into a log line, and ``PYROSCOPE_BASIC_AUTH_*`` can win over it.
    """
    parts = url_userinfo(url)
    if parts is None:
        return url, "", ""
    from urllib.parse import unquote

    scheme, userinfo, host, rest = parts
    user, _, password = userinfo.partition(":")
    return f"{scheme}://{host}{rest}", unquote(user), unquote(password)


def _profiler_config(
    environ: Mapping[str, str],
    service_name: str,
    service_name_source: str,
    errors: list[SettingError],
    notices: list[str],
    span_labels_added: int = 1,
) -> ProfilerConfig | None:
    def read(field: str) -> Any:
        return _field(f"profiler.{field}", environ, errors)

    application_name = read("application_name")
    name_source = "PYROSCOPE_APPLICATION_NAME"
    if not application_name:
        application_name, name_source = service_name, service_name_source
    tags: dict[str, str] = {}
    sources: dict[str, str] = {}
    try:
        attributes = registry.setting("OTEL_RESOURCE_ATTRIBUTES").read(environ)
    except SettingError:
        attributes = {}  # reported with the tracing settings
    for attribute, label in RESOURCE_LABELS.items():
        if attributes.get(attribute):
            tags[label] = str(attributes[attribute])
            sources[label] = "OTEL_RESOURCE_ATTRIBUTES"
    user_labels = read("tags")
    tags.update(user_labels)
    sources.update(dict.fromkeys(user_labels, "PYROSCOPE_LABELS"))
    application_name = _fit_service_name(application_name, name_source, notices)
    tags = _fit_user_labels(tags, sources, span_labels_added, notices)
    server_address, url_user, url_password = split_credentials(read("server_address"))
    user, password = read("basic_auth_user"), read("basic_auth_password")
    if not (user or password):
        user, password = url_user, url_password
    config = ProfilerConfig(
        application_name=application_name,
        server_address=server_address,
        sample_rate=read("sample_rate"),
        upload_interval=read("upload_interval"),
        tags=tags,
        basic_auth_user=user,
        basic_auth_password=password,
        tenant_id=read("tenant_id"),
        http_headers=read("http_headers"),
        oncpu=read("oncpu"),
        profile_memory=read("profile_memory"),
    )
    return None if errors else config


def _fit_service_name(name: str, source: str, notices: list[str]) -> str:
    """The profiles' ``service_name``, cut to a Pyroscope label value, said once if cut."""
    fitted = label_limits.fit_value(name)
    if fitted != name:
        mismatch = "" if source == "PYROSCOPE_APPLICATION_NAME" else ", unlike the spans"
        why, how = _change(name, fitted)
        notices.append(
            f"{source or 'the service name'}: {why}; profiles carry service_name {how}{mismatch}"
        )
    return fitted


def _change(value: str, fitted: str) -> tuple[str, str]:
    """Why a label value had to change, and how: for the one line that says so."""
    try:
        value.encode()
        bad = ""
    except UnicodeEncodeError:
        bad = "with U+FFFD for its undecodable bytes"
    size = label_limits.utf8_size(value)
    if size <= label_limits.MAX_VALUE_BYTES:
        return "not valid UTF-8", bad
    limit = label_limits.MAX_VALUE_BYTES
    why = f"{size} bytes, more than the {limit} bytes of UTF-8 Pyroscope takes"
    how = f"cut to {label_limits.utf8_size(fitted)} bytes"
    return why, f"{how} {bad}" if bad else how


def _shown_name(name: str) -> str:
    return name if len(name) <= 40 else f"{name[:40]}..."


def _fit_user_labels(
    tags: dict[str, str], sources: dict[str, str], span_labels_added: int, notices: list[str]
) -> dict[str, str]:
    """The user's profile labels within Pyroscope's limits, one notice for each change.

    A value is cut (at a character boundary); a name too long is left out, as are the
    labels past the number a series can still take besides the profiler's own and the
    span labels (docs/design.md, labels within Pyroscope's limits).
    """
    fitted: dict[str, str] = {}
    for name, value in tags.items():
        source = sources.get(name, "PYROSCOPE_LABELS")
        if label_limits.fit_name(name) != name:
            notices.append(
                f"{source}: the label name {_shown_name(name)!r} is "
                f"{label_limits.utf8_size(name)} bytes, more than the "
                f"{label_limits.MAX_NAME_BYTES} Pyroscope takes; profiles are sent without it"
            )
            continue
        cut = label_limits.fit_value(value)
        if cut != value:
            why, how = _change(value, cut)
            notices.append(f"{source}: the value of {name} is {why}; profiles carry it {how}")
        fitted[name] = cut
    room = label_limits.user_label_room(span_labels_added)
    if len(fitted) > room:
        left_out = list(fitted)[room:]
        by_source: dict[str, list[str]] = {}
        for name in left_out:
            by_source.setdefault(sources.get(name, "PYROSCOPE_LABELS"), []).append(name)
        for source, names in by_source.items():
            notices.append(
                f"{source}: {len(fitted)} profile labels in all, but a Pyroscope series takes "
                f"{label_limits.MAX_SERIES_LABELS} labels and "
                f"{label_limits.MAX_SERIES_LABELS - room} are the profiler's and the spans' "
                f"own; profiles are sent without {', '.join(names)}"
            )
        fitted = {name: fitted[name] for name in list(fitted)[:room]}
    return fitted
