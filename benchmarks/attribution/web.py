"""The async web service scenario: uvicorn + FastAPI under pyrospan-run, keep-alive clients.

``run_web`` starts web_app.py under ``pyrospan-run python -m uvicorn`` against a fresh
receiver, lets ``clients`` keep-alive clients request the three endpoints in turn for
``seconds``, stops the server and scores every CPU sample of the endpoints' functions
against the request span that ran it (span name ``GET /search`` -> ``search_products``).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from judge import Score, score  # noqa: E402
from recording import RecordingReceiver  # noqa: E402

from pyrospan_launch.receiver.records import ProfileSample  # noqa: E402
from pyrospan_launch.receiver.server import Receiver  # noqa: E402

FUNCTIONS = {"/search": "search_products", "/basket": "price_basket", "/account": "render_account"}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def receiver_env(receiver: Receiver, **extra: str) -> dict[str, str]:
    """This environment without pyrospan, Pyroscope or OTel settings, sending to ``receiver``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYROSPAN_", "PYROSCOPE_", "OTEL_", "_PYROSPAN"))
        and key != "PYTHONPATH"
    }
    env.update(
        PYROSCOPE_SERVER_ADDRESS=receiver.url, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, **extra
    )
    return env


def wait_until_serving(port: int, server: subprocess.Popen[str], timeout: float = 60) -> None:
    """Return once the app answers on ``port``; SystemExit if it ended or took too long."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/docs", timeout=2).read()
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                _stop(server)
                raise SystemExit(
                    f"the server did not start (status {server.returncode}):\n"
                    f"{server.communicate()[1][-3000:]}"
                ) from None
            time.sleep(0.1)


def keep_requesting(
    port: int, paths: list[str], until: float, errors: list[str], keep_alive: bool
) -> None:
    """One client: request ``paths`` in turn until ``until``, errors into ``errors``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    i = 0
    while time.monotonic() < until:
        try:
            connection.request("GET", paths[i % len(paths)])
            connection.getresponse().read()
        except (OSError, http.client.HTTPException) as exc:
            errors.append(repr(exc))
            keep_alive = False
        if not keep_alive:
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i += 1
    connection.close()


def web_env(
    receiver: Receiver, chunk_ms: float, chunks: int, depth: int, **extra: str
) -> dict[str, str]:
    """The services' environment: short push and export intervals, the work's shape."""
    return receiver_env(
        receiver,
        PYROSCOPE_UPLOAD_INTERVAL="1",
        OTEL_BSP_SCHEDULE_DELAY="200",
        # Thousands of short requests a second: the default queue (2048 spans) would
        # drop spans, and their samples would be judged against spans never seen.
        OTEL_BSP_MAX_QUEUE_SIZE="200000",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE="2048",
        OTEL_SERVICE_NAME="web",
        WEB_CHUNK_MS=str(chunk_ms),
        WEB_CHUNKS=str(chunks),
        WEB_DEPTH=str(depth),
        **extra,
    )


def _stop(server: subprocess.Popen[str]) -> str:
    """SIGTERM, then SIGKILL to the whole session (workers its main left behind); stderr."""
    with contextlib.suppress(ProcessLookupError):
        server.send_signal(signal.SIGTERM)
    try:
        _, err = server.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        err = "(did not stop within 30 s)"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.communicate()
    return err


def serve_and_score(
    receiver: RecordingReceiver,
    command_for: Callable[[int], list[str]],
    env: dict[str, str],
    *,
    clients: int = 12,
    seconds: float = 4.0,
    keep_alive: bool = True,
) -> tuple[Score, list[ProfileSample]]:
    """Serve ``command_for(port)`` under pyrospan-run, load it, stop it, score its samples.

    Every sample of an endpoint's function is judged against the request span that ran
    it (span name ``GET /search`` -> ``search_products``).
    """
    port = free_port()
    command = command_for(port)
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("pyrospan-run")), *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a failed run cannot leave workers behind
    )
    try:
        wait_until_serving(port, server)
        paths = list(FUNCTIONS)
        until = time.monotonic() + seconds
        errors: list[str] = []
        threads = [
            threading.Thread(
                target=keep_requesting,
                args=(port, paths[i:] + paths[:i], until, errors, keep_alive),
            )
            for i in range(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise SystemExit(f"{len(errors)} requests failed, e.g. {errors[0]}")
    finally:
        err = _stop(server)
    if server.returncode not in (0, -signal.SIGTERM):
        raise SystemExit(f"{command[0]} exited with {server.returncode}:\n{err}")
    receiver.wait_for(lambda r: len(r.root_spans()) > 0, timeout=10)
    time.sleep(0.5)
    owner = {
        span.span_id: FUNCTIONS[span.name.split()[-1]]
        for span in receiver.root_spans()
        if span.name.split()[-1] in FUNCTIONS
    }
    samples = receiver.samples()
    return score(samples, owner), samples


def run_web(
    chunk_ms: float,
    *,
    clients: int = 12,
    seconds: float = 4.0,
    chunks: int = 20,
    depth: int = 2,
    gunicorn_workers: int = 0,
    keep_alive: bool = True,
    **env: str,
) -> tuple[Score, list[ProfileSample]]:
    """One run of the service, scored, and the samples the receiver got.

    ``depth`` is the frames between an endpoint's marker and its burning function
    (endpoint_work.py).  ``gunicorn_workers`` > 0 serves it with gunicorn's uvicorn
    workers (forked, with ``--preload``) instead of uvicorn alone; ``keep_alive=False``
    opens a connection per request, so that every worker gets some.  ``env`` adds
    variables (``PYROSPAN_SPAN_LABELS=tags``...).
    """

    def command(port: int) -> list[str]:
        if gunicorn_workers:
            return [
                str(Path(sys.executable).with_name("gunicorn")),
                "-w", str(gunicorn_workers), "-k", "uvicorn.workers.UvicornWorker",
                "--preload", "--chdir", str(HERE), "-b", f"127.0.0.1:{port}", "web_app:app",
            ]  # fmt: skip
        return [
            sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "--port", str(port),
            "--no-access-log", "web_app:app",
        ]  # fmt: skip

    with RecordingReceiver() as receiver:
        return serve_and_score(
            receiver,
            command,
            web_env(receiver, chunk_ms, chunks, depth, **env),
            clients=clients,
            seconds=seconds,
            keep_alive=keep_alive,
        )


if __name__ == "__main__":
    for method in ("frames", "tags"):
        chunk = float(sys.argv[1]) if len(sys.argv) > 1 else 0.3
        print(method, run_web(chunk, PYROSPAN_SPAN_LABELS=method)[0])
