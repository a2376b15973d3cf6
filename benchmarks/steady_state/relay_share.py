"""The relay's own share of a service's CPU: what it counts for itself against the process.

Serves benchmarks/attribution/web_app.py under pyrospan-run with uvicorn (marker frames,
so every push goes through the relay), loads it with keep-alive clients for
``--seconds``, reads the server process's CPU time from /proc, stops it with SIGTERM and
reads the relay's own count from its debug line at exit (``relay: N pushes received,
... X ms of CPU``: reading, rewriting and forwarding every push).

    python benchmarks/steady_state/relay_share.py [--seconds 30] [--clients 8]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ATTRIBUTION = Path(__file__).resolve().parent.parent / "attribution"
sys.path.insert(0, str(ATTRIBUTION))
from web import (  # noqa: E402
    FUNCTIONS,
    free_port,
    keep_requesting,
    receiver_env,
    wait_until_serving,
)

from pyrospan_launch.receiver.server import Receiver  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--chunk-ms", type=float, default=0.3)
    args = parser.parse_args()
    with Receiver() as receiver:
        env = receiver_env(
            receiver,
            OTEL_SERVICE_NAME="relay-share",
            OTEL_BSP_MAX_QUEUE_SIZE="200000",
            PYROSPAN_LOG_LEVEL="debug",
            WEB_CHUNK_MS=str(args.chunk_ms),
        )
        port = free_port()
        server = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("pyrospan-run")),
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(ATTRIBUTION),
                "--port",
                str(port),
                "--no-access-log",
                "web_app:app",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until_serving(port, server)
        until = time.monotonic() + args.seconds
        errors: list[str] = []
        paths = list(FUNCTIONS)
        clients = [
            threading.Thread(target=keep_requesting, args=(port, paths, until, errors, True))
            for _ in range(args.clients)
        ]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        fields = Path(f"/proc/{server.pid}/stat").read_text().rsplit(")", 1)[1].split()
        process_cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    found = re.search(r"relay: (\d+) pushes received.*; ([\d.]+) ms of CPU", err)
    if found is None:
        raise SystemExit(f"no relay line in the server's stderr:\n{err[-2000:]}")
    pushes, relay_ms = int(found.group(1)), float(found.group(2))
    print(
        f"relay: {relay_ms:.1f} ms of CPU for {pushes} pushes; the server process used "
        f"{process_cpu:.2f} s in {args.seconds:.0f} s: the relay's share "
        f"{relay_ms / 1000 / process_cpu * 100:.2f}%"
    )


if __name__ == "__main__":
    main()
