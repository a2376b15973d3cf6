"""The examples stay true: real apps under pyrospan-run, a Dockerfile, and a Grafana stack.

Docker does not run on the test machines, so the compose file, Tempo's config, Grafana's
provisioning and the Dockerfile are checked as files: they parse, carry the keys the stack
needs, agree with each other, and set only environment variables that pyrospan-run or the
OpenTelemetry SDK really reads.  The apps themselves run for real: each example server under
``pyrospan-run --local`` with requests from its own load script, and the Flask app with the
compose file's environment against the project's receiver, which shows that its traces and
profiles carry exactly the labels and profile type Grafana's provisioning queries.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from helpers import BIN, PYROSPAN_RUN, backend_env, clean_env, free_port, run, stop, wait_for_http
from recording_receiver import RecordingReceiver

from pyrospan_launch.receiver.records import ProfileSeries, ReceivedSpan
from pyrospan_launch.settings import registry

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GRAFANA = EXAMPLES / "grafana"
DOCS_PAGE = ROOT / "docs" / "grafana.md"
PY = sys.executable

# CPU time a request's own function must show in its span's samples: each CPU endpoint
# burns about 300 ms by default, so this leaves a wide margin on a busy machine.
MIN_CPU_MS = 60


# --- reading the files ----------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    with path.open() as file:
        return yaml.safe_load(file)


def compose() -> dict[str, Any]:
    return dict(load_yaml(GRAFANA / "compose.yaml"))


def provisioned_datasources() -> list[dict[str, Any]]:
    """The data sources of every provisioning file Grafana's container mounts."""
    grafana = compose()["services"]["grafana"]
    (mount,) = [v for v in grafana["volumes"] if v.split(":")[1] == "/etc/grafana/provisioning"]
    directory = GRAFANA / mount.split(":")[0]
    files = sorted((directory / "datasources").glob("*.y*ml"))
    assert files, f"no data source files in {directory}/datasources"
    found: list[dict[str, Any]] = []
    for file in files:
        document = load_yaml(file)
        assert document["apiVersion"] == 1, file
        found += document["datasources"]
    return found


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def dockerfile_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """Every ``ENV name=value`` the Dockerfile sets."""
    env: dict[str, str] = {}
    for keyword, arguments in instructions:
        if keyword == "ENV":
            for item in shlex.split(arguments):
                name, sep, value = item.partition("=")
                assert sep, f"ENV {item!r}: use the name=value form"
                env[name] = value
    return env


# The modules where the OpenTelemetry API, SDK and auto-instrumentation define the names of
# the OTEL_* variables they read.  pyrospan-run's own registry (registry.BY_NAME) lists the
# PYROSPAN_* and PYROSCOPE_* ones, and the OTEL_* ones it also checks itself.
OTEL_ENVIRONMENT_MODULES = (
    "opentelemetry.environment_variables",
    "opentelemetry.sdk.environment_variables",
    "opentelemetry.instrumentation.environment_variables",
)


def otel_sdk_names() -> set[str]:
    names: set[str] = set()
    for module_name in OTEL_ENVIRONMENT_MODULES:
        module = importlib.import_module(module_name)
        names |= {
            value
            for value in vars(module).values()
            if isinstance(value, str) and re.fullmatch(r"OTEL_[A-Z0-9_]+", value)
        }
    return names


def unknown_names(names: set[str]) -> set[str]:
    """The names neither pyrospan-run's registry nor the OpenTelemetry SDK reads."""
    return names - set(registry.BY_NAME) - otel_sdk_names()


def host_port(url: str) -> tuple[str | None, int | None]:
    parts = urlsplit(url if "://" in url else f"//{url}")
    return parts.hostname, parts.port


# --- the Grafana stack, as files --------------------------------------------------------


def test_compose_runs_the_app_with_grafana_tempo_and_pyroscope_at_pinned_releases() -> None:
    services = compose()["services"]
    assert set(services) == {"app", "tempo", "pyroscope", "grafana"}
    for name in ("grafana", "tempo", "pyroscope"):
        # A release tag, never `latest`: the provisioning keys below are those releases' keys.
        assert re.fullmatch(rf"grafana/{name}:\d+\.\d+\.\d+", services[name]["image"])
    app = services["app"]
    assert (GRAFANA / app["build"]["context"] / app["build"]["dockerfile"]).resolve() == (
        EXAMPLES / "Dockerfile"
    )
    # Every published port stays on the loopback interface (Grafana has anonymous admin).
    for service in services.values():
        for mapping in service.get("ports", []):
            assert mapping.startswith("127.0.0.1:"), mapping


def test_traces_go_to_tempos_otlp_http_receiver_and_profiles_to_pyroscope() -> None:
    services = compose()["services"]
    env = services["app"]["environment"]
    tempo_config_mount = next(v for v in services["tempo"]["volumes"] if "tempo.yaml" in v)
    source, target = tempo_config_mount.split(":")[:2]
    assert f"-config.file={target}" in services["tempo"]["command"]
    tempo = load_yaml(GRAFANA / source)
    receiver = tempo["distributor"]["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    # Tempo's receivers listen on localhost unless told otherwise; the app is another container.
    assert host_port(receiver) == ("0.0.0.0", 4318)
    assert env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf") == "http/protobuf"
    assert host_port(env["OTEL_EXPORTER_OTLP_ENDPOINT"]) == ("tempo", 4318)
    assert host_port(env["PYROSCOPE_SERVER_ADDRESS"]) == ("pyroscope", 4040)
    published = {m.rsplit(":", 1)[1] for m in services["tempo"]["ports"]}
    assert {"4318", str(tempo["server"]["http_listen_port"])} <= published
    assert "127.0.0.1:4040:4040" in services["pyroscope"]["ports"]
    # Each value is one pyrospan-run accepts (a bad one would turn a part off at start-up).
    for name, value in env.items():
        if name in registry.BY_NAME:
            registry.BY_NAME[name].read({name: value})


def test_grafana_provisioning_wires_traces_to_profiles() -> None:
    datasources = provisioned_datasources()
    by_uid = {source["uid"]: source for source in datasources}
    assert len(by_uid) == len(datasources), "data source uids must be unique"
    (pyroscope,) = [s for s in datasources if s["type"] == "grafana-pyroscope-datasource"]
    (tempo,) = [s for s in datasources if s["type"] == "tempo"]
    tempo_config = load_yaml(GRAFANA / "tempo.yaml")
    assert host_port(pyroscope["url"]) == ("pyroscope", 4040)
    assert host_port(tempo["url"]) == ("tempo", tempo_config["server"]["http_listen_port"])

    link = tempo["jsonData"]["tracesToProfiles"]
    assert by_uid[link["datasourceUid"]] is pyroscope
    assert link["tags"] == [
        {"key": "service.name", "value": "service_name"},
        {"key": "service.namespace", "value": "service_namespace"},
    ]
    assert link["profileTypeId"] == "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
    assert link["customQuery"] is False


# --- the Dockerfile ---------------------------------------------------------------------


def test_dockerfile_execs_the_server_through_pyrospan_run_configured_by_env_only() -> None:
    instructions = dockerfile_instructions(EXAMPLES / "Dockerfile")
    keywords = [keyword for keyword, _ in instructions]
    assert re.fullmatch(r"python:3\.\d+-slim", dict(instructions)["FROM"])
    (entrypoint,) = [json.loads(a) for k, a in instructions if k == "ENTRYPOINT"]
    assert entrypoint == ["pyrospan-run"]
    (command,) = [json.loads(a) for k, a in instructions if k == "CMD"]
    assert command[0] == "gunicorn"
    assert keywords.index("ENTRYPOINT") < keywords.index("CMD")
    installs = " ".join(a for k, a in instructions if k == "RUN" and "pip install" in a)
    assert '"pyrospan-run[web]"' in installs and "-r requirements.txt" in installs

    env = dockerfile_env(instructions)
    assert {
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "PYROSCOPE_SERVER_ADDRESS",
    } <= set(env)
    assert "service.namespace" in registry.BY_NAME["OTEL_RESOURCE_ATTRIBUTES"].read(env)
    for name, value in env.items():
        if name in registry.BY_NAME:
            registry.BY_NAME[name].read({name: value})


def test_every_variable_the_examples_set_or_mention_is_read_by_something() -> None:
    image_env = dockerfile_env(dockerfile_instructions(EXAMPLES / "Dockerfile"))
    compose_env = compose()["services"]["app"]["environment"]
    assert unknown_names(set(image_env)) == set()
    assert unknown_names(set(compose_env)) == set()
    mentioned: set[str] = set()
    for page in [DOCS_PAGE, *EXAMPLES.glob("*/README.md")]:
        mentioned |= set(
            re.findall(r"\b(?:PYROSPAN|PYROSCOPE|OTEL)_[A-Z0-9_]*[A-Z0-9]", page.read_text())
        )
    assert mentioned, "the docs should name the variables they talk about"
    assert unknown_names(mentioned) == set()


def test_readme_links_the_grafana_page() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "(docs/grafana.md)" in readme
    for folder in ("flask_app", "fastapi_app", "django_app"):
        assert f"examples/{folder}/" in readme


# --- the apps, under pyrospan-run --local -------------------------------------------------


@dataclass(frozen=True)
class ExampleApp:
    """One example app: its folder, its README's command and its CPU-heavy endpoints."""

    folder: str
    command: str  # exactly as in the app's README, on port 8000
    cpu: dict[str, tuple[str, str]]  # path -> (root span name, function burning the CPU)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return EXAMPLES / self.folder

    def argv(self, port: int) -> list[str]:
        """The README's server command on another port."""
        return [
            arg.replace("127.0.0.1:8000", f"127.0.0.1:{port}") if arg != "8000" else str(port)
            for arg in shlex.split(self.command)
        ]


APPS = {
    "flask": ExampleApp(
        "flask_app",
        "gunicorn -w 2 -b 127.0.0.1:8000 app:app",
        {"/invoice": ("GET /invoice", "compute_invoice_totals")},
    ),
    "fastapi": ExampleApp(
        "fastapi_app",
        "uvicorn --host 127.0.0.1 --port 8000 app:app",
        {
            "/recommendations": ("GET /recommendations", "score_recommendations"),
            "/thumbnails": ("GET /thumbnails", "render_thumbnails"),
        },
    ),
    "django": ExampleApp(
        "django_app",
        "gunicorn -w 2 -b 127.0.0.1:8000 shopsite.wsgi",
        # No DJANGO_SETTINGS_MODULE: the startproject wsgi.py sets it after importing Django.
        {"/report": ("GET report", "build_sales_report")},
    ),
}


class LocalData:
    """What ``--local`` stored in its SQLite file, read-only (it may still be writing)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _rows(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        if not self.path.exists():
            return []
        try:
            uri = f"file:{self.path}?mode=ro"
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
                return db.execute(sql, args).fetchall()
        except sqlite3.OperationalError:
            return []  # created but not yet initialised

    def root_spans(self, name: str) -> dict[str, dict[str, Any]]:
        """span id -> attributes of the root spans called ``name``."""
        rows = self._rows("SELECT span_id, attributes FROM spans WHERE is_root AND name = ?", name)
        return {span_id: json.loads(attributes) for span_id, attributes in rows}

    def samples_of(self, span_id: str) -> list[tuple[list[str], int, dict[str, str]]]:
        """(function names of the stack, CPU ns, labels) of samples labelled ``span_id``."""
        rows = self._rows(
            "SELECT stacks.frames, samples.value, samples.labels FROM samples "
            "JOIN stacks ON stacks.id = samples.stack_id WHERE samples.span_id = ?",
            span_id,
        )
        return [
            ([f[0] for f in json.loads(frames)], v, json.loads(labels))
            for frames, v, labels in rows
        ]

    def cpu_ms(self, span_id: str, function: str) -> float:
        return sum(v for stack, v, _ in self.samples_of(span_id) if function in stack) / 1e6


@contextlib.contextmanager
def local_mode(app: ExampleApp, report: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The app's README command under ``pyrospan-run --local``; yields (launcher, base URL)."""
    port = free_port()
    env = clean_env(
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        OTEL_BSP_SCHEDULE_DELAY="200",
        **app.env,
    )
    launcher = subprocess.Popen(
        [PYROSPAN_RUN, "--local", "--report-dir", str(report), *app.argv(port)],
        cwd=app.directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield launcher, f"http://127.0.0.1:{port}"
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.communicate()


def linked(data: LocalData, app: ExampleApp, requests_per_path: int) -> bool:
    """Every CPU request's root span is there, with its profile id and its function's CPU."""
    for span_name, function in app.cpu.values():
        spans = data.root_spans(span_name)
        if len(spans) < requests_per_path:
            return False
        for span_id, attributes in spans.items():
            if attributes.get("pyroscope.profile.id") != span_id:
                return False
            if data.cpu_ms(span_id, function) < MIN_CPU_MS:
                return False
    return True


def summary_top_function(stderr: str, span_name: str) -> str:
    """The first function the terminal summary lists under ``span_name``."""
    lines = stderr.splitlines()
    (index,) = [
        i
        for i, line in enumerate(lines)
        if re.match(rf"  {re.escape(span_name)}\s+\d+ spans", line)
    ]
    match = re.match(r"\s+[\d.]+ m?s\s+\d+%\s+(\S+)", lines[index + 1])
    assert match, lines[index + 1]
    return match[1]


@pytest.mark.e2e
@pytest.mark.parametrize("name", sorted(APPS))
def test_example_app_links_its_cpu_endpoints_under_local_mode(name: str, tmp_path: Path) -> None:
    app = APPS[name]
    readme = (app.directory / "README.md").read_text()
    prefix = " ".join(f"{k}={v}" for k, v in app.env.items())
    assert f"{prefix} pyrospan-run --local {app.command}".strip() in readme

    requests_per_path = 2
    data = LocalData(tmp_path / "report" / "pyrospan.sqlite")
    with local_mode(app, tmp_path / "report") as (launcher, base):
        wait_for_http(base + "/", launcher)
        load = run(
            [PY, "load.py", "--url", base, "--concurrency", "2", "--max-seconds", "60"]
            + ["--requests", str(requests_per_path * len(app.cpu))]
            + [arg for path in app.cpu for arg in ("--path", path)],
            clean_env(),
            cwd=app.directory,
        )
        assert load.returncode == 0, load.stdout + load.stderr
        for path in app.cpu:
            assert f"{base}{path}: {requests_per_path} ok, 0 failed" in load.stdout
        deadline = time.monotonic() + 30
        while not linked(data, app, requests_per_path) and time.monotonic() < deadline:
            time.sleep(0.2)
        launcher.send_signal(signal.SIGTERM)
        _, err = launcher.communicate(timeout=30)

    # gunicorn exits 0 on SIGTERM; uvicorn shuts down, then dies of the signal it caught.
    assert launcher.returncode in (0, 128 + signal.SIGTERM), err
    assert f"exited with status {launcher.returncode}" in err
    assert "Traceback" not in err
    for span_name, function in app.cpu.values():
        spans = data.root_spans(span_name)
        assert len(spans) == requests_per_path, (span_name, err)
        for span_id, attributes in spans.items():
            # The span carries the profile id, and its own samples show the request's code.
            assert attributes.get("pyroscope.profile.id") == span_id
            assert data.cpu_ms(span_id, function) >= MIN_CPU_MS, (span_name, function, err)
            assert {labels.get("span_name") for _, _, labels in data.samples_of(span_id)} == {
                span_name
            }
        assert summary_top_function(err, span_name) == function


# --- the compose app's environment, against the receiver ----------------------------------


def profile_type_id(series: ProfileSeries) -> str:
    """Grafana's profile type id: name, sample type and unit, period type and unit."""
    sample_type, sample_unit = series.sample_types[0]
    period_type, period_unit = series.period_type
    return f"{series.name}:{sample_type}:{sample_unit}:{period_type}:{period_unit}"


def image_command(port: int) -> list[str]:
    """The Dockerfile's CMD, bound to 127.0.0.1:port instead of the container's 0.0.0.0:8000."""
    instructions = dockerfile_instructions(EXAMPLES / "Dockerfile")
    (command,) = [json.loads(a) for k, a in instructions if k == "CMD"]
    return [arg.replace("0.0.0.0:8000", f"127.0.0.1:{port}") for arg in command]


def image_app_directory() -> Path:
    """The example the image builds by default (its ``ARG APP``)."""
    instructions = dockerfile_instructions(EXAMPLES / "Dockerfile")
    (default,) = [
        a.split("=", 1)[1] for k, a in instructions if k == "ARG" and a.startswith("APP=")
    ]
    return EXAMPLES / default


def get(url: str) -> None:
    with urllib.request.urlopen(url, timeout=30) as response:
        response.read()


def server_spans(receiver: RecordingReceiver, name: str) -> list[ReceivedSpan]:
    return [s for s in receiver.root_spans() if s.name == name and s.kind == 2]


@pytest.mark.e2e
def test_compose_app_sends_the_labels_and_profile_type_grafana_queries(
    receiver: RecordingReceiver,
) -> None:
    app_env = dict(compose()["services"]["app"]["environment"])
    # Only the two backend addresses change: the receiver stands in for Tempo and Pyroscope.
    del app_env["OTEL_EXPORTER_OTLP_ENDPOINT"], app_env["PYROSCOPE_SERVER_ADDRESS"]
    env = backend_env(receiver, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **app_env)
    port = free_port()
    server = subprocess.Popen(
        [PYROSPAN_RUN, *image_command(port)],
        cwd=image_app_directory(),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", server)
        for _ in range(2):
            get(f"http://127.0.0.1:{port}/invoice")

        def cpu_ms(r: RecordingReceiver, span: ReceivedSpan) -> float:
            samples = r.samples_with_label("span_id", span.span_id)
            return sum(s.values[0] for s in samples if "compute_invoice_totals" in s.stack) / 1e6

        assert receiver.wait_for(
            lambda r: (
                len(server_spans(r, "GET /invoice")) == 2
                and all(cpu_ms(r, s) >= MIN_CPU_MS for s in server_spans(r, "GET /invoice"))
            ),
            timeout=30,
        ), [(s.span_id, cpu_ms(receiver, s)) for s in server_spans(receiver, "GET /invoice")]
    finally:
        _, err = stop(server)
    assert "Traceback" not in err

    (tempo,) = [s for s in provisioned_datasources() if s["type"] == "tempo"]
    link = tempo["jsonData"]["tracesToProfiles"]
    for span in server_spans(receiver, "GET /invoice"):
        assert span.attributes["pyroscope.profile.id"] == span.span_id
        series = [
            p
            for p in receiver.profiles
            if any(s.labels.get("span_id") == span.span_id for s in p.samples)
        ]
        assert series
        for profile in series:
            # What "Profiles for this span" asks Pyroscope for: this profile type, and each
            # tag's span resource attribute as the profile label it maps to.
            assert profile_type_id(profile) == link["profileTypeId"]
            for tag in link["tags"]:
                assert profile.labels[tag["value"]] == span.resource[tag["key"]], tag
    assert span.resource["service.name"] == app_env["OTEL_SERVICE_NAME"]
    assert span.resource["service.namespace"] == "shop"


@pytest.mark.e2e
def test_oncpu_false_shows_waiting_in_the_io_endpoints_span_profile(
    receiver: RecordingReceiver,
) -> None:
    env = backend_env(
        receiver,
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        OTEL_SERVICE_NAME="invoices",
        PYROSCOPE_ONCPU="false",
    )
    port = free_port()
    server = subprocess.Popen(
        [PYROSPAN_RUN, "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "app:app"],
        cwd=EXAMPLES / "flask_app",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", server)
        for _ in range(2):
            get(f"http://127.0.0.1:{port}/shipping?wait=0.3")
    finally:
        # The worker sends its last spans and profile window as it exits.
        _, err = stop(server)
    assert "Traceback" not in err
    spans = server_spans(receiver, "GET /shipping")
    assert len(spans) == 2
    for span in spans:
        assert span.attributes["pyroscope.profile.id"] == span.span_id
        samples = receiver.samples_with_label("span_id", span.span_id)
        waited_ms = sum(s.values[0] for s in samples if "fetch_shipping_quote" in s.stack) / 1e6
        assert waited_ms >= 150, f"{waited_ms} ms of the 300 ms wait in span {span.span_id}"
