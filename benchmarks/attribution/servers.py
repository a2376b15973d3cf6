"""Web scenarios per server kind: a real server under pyrospan-run, two workers, keep-busy clients.

* ``prefork-wsgi``: the Flask service (server_app.py) under uWSGI, master and two
  preforked workers;
* ``gevent``: the same service under ``gunicorn -k gevent`` with two workers: every
  chunk yields, so many requests' greenlets take turns on each worker's thread;
* ``granian-asgi``: the FastAPI service (web_app.py) under ``granian --interface asgi``
  with two workers.

Each run lets 12 clients request the three endpoints in turn, stops the server with
SIGTERM and scores every CPU sample of the endpoints' functions against the request
span that ran it (judge.py), for marker frames and for thread tags, in interleaved
rounds.  Targets as the sweep's: precision >= 98%, recall >= 95%, no sample with two
span_ids.

    python benchmarks/attribution/servers.py [--rounds 3] [--chunk-ms 0.3] [--servers ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from judge import Score  # noqa: E402
from recording import RecordingReceiver  # noqa: E402
from web import serve_and_score, web_env  # noqa: E402

BIN = Path(sys.executable).parent
SERVERS = ("prefork-wsgi", "gevent", "granian-asgi")
METHODS = ("frames", "tags")
PRECISION, RECALL = 0.98, 0.95


def server_command(server: str, port: int) -> tuple[list[str], bool]:
    """The server's command line, and whether its clients keep connections alive."""
    if server == "prefork-wsgi":
        return [
            str(BIN / "uwsgi"), "--master", "--processes", "2", "--die-on-term",
            "--http-socket", f"127.0.0.1:{port}", "--chdir", str(HERE),
            "--wsgi-file", "server_app.py", "--callable", "app", "--disable-logging",
        ], False  # fmt: skip
    if server == "gevent":
        return [
            str(BIN / "gunicorn"), "-k", "gevent", "-w", "2", "--chdir", str(HERE),
            "-b", f"127.0.0.1:{port}", "server_app:app",
        ], True  # fmt: skip
    if server == "granian-asgi":
        return [
            str(BIN / "granian"), "--interface", "asgi", "--workers", "2",
            "--host", "127.0.0.1", "--port", str(port), "--working-dir", str(HERE),
            "--no-ws", "web_app:app",
        ], True  # fmt: skip
    raise SystemExit(f"unknown server {server!r}; one of {', '.join(SERVERS)}")


def run_server(
    server: str, method: str, chunk_ms: float, *, clients: int = 12, seconds: float = 4.0
) -> Score:
    """One run of ``server`` with span labels by ``method``, scored."""
    keep_alive = server_command(server, 0)[1]
    with RecordingReceiver() as receiver:
        return serve_and_score(
            receiver,
            lambda port: server_command(server, port)[0],
            web_env(receiver, chunk_ms, 20, 2, PYROSPAN_SPAN_LABELS=method),
            clients=clients,
            seconds=seconds,
            keep_alive=keep_alive,
        )[0]


def percent(value: float) -> str:
    return "n/a" if value != value else f"{value * 100:.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunk-ms", type=float, default=0.3)
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()
    servers = args.servers.split(",")
    methods = args.methods.split(",")
    results: dict[tuple[str, str], list[Score]] = {}
    for round_number in range(args.rounds):
        for server in servers:
            order = methods if round_number % 2 == 0 else list(reversed(methods))
            for method in order:
                result = run_server(server, method, args.chunk_ms)
                results.setdefault((server, method), []).append(result)
                print(
                    f"round {round_number + 1} {server:<13} {method:<6} precision "
                    f"{percent(result.precision)} recall {percent(result.recall)} two span_ids "
                    f"{result.conflicts} ({result.judged_ms:.0f} ms judged)",
                    file=sys.stderr,
                    flush=True,
                )
    print(
        f"\nServers, median of {args.rounds} interleaved rounds (two workers, 12 clients, "
        f"20 chunks of {args.chunk_ms:g} ms per request)\n"
    )
    print("| server | labels | precision | recall | two span_ids | target met |")
    print("|---|---|---|---|---|---|")
    for server in servers:
        for method in methods:
            runs = results[(server, method)]
            precision = statistics.median(
                r.precision if r.precision == r.precision else 0.0 for r in runs
            )
            recall = statistics.median(r.recall for r in runs)
            conflicts = sum(r.conflicts for r in runs)
            met = precision >= PRECISION and recall >= RECALL and conflicts == 0
            print(
                f"| {server} | {method} | {percent(precision)} | {percent(recall)} | "
                f"{conflicts} | {'yes' if met else 'no'} |"
            )


if __name__ == "__main__":
    main()
