"""Web scenarios per server kind: a real server under pyrospan-run, two workers, keep-busy clients.

* ``prefork-wsgi``: the Flask service (server_app.py) under uWSGI, master and two
  preforked workers;
* ``gunicorn-sync``: the same service under gunicorn's sync workers (two, forked);
* ``gevent``: the same service under ``gunicorn -k gevent`` with two workers: every
  chunk yields, so many requests' greenlets take turns on each worker's thread;
* ``uvicorn-workers``: the FastAPI service (web_app.py) under ``uvicorn --workers 2``,
  whose workers are spawned (multiprocessing), not forked;
* ``granian-asgi``: the FastAPI service under ``granian --interface asgi`` with two
  workers.

Each run lets 12 clients request the three endpoints in turn, stops the server with
SIGTERM and scores every CPU sample of the endpoints' functions against the request
span that ran it (judge.py), for each sampler (``PYROSPAN_SAMPLER``) and span label
method (``PYROSPAN_SPAN_LABELS``), in interleaved rounds.  ``--depth`` puts layers of
calls between an endpoint and its burning function (endpoint_work.py): plain calls in
the Flask service, async layers in the FastAPI one.  Targets as the sweep's: precision
>= 99.5%, recall >= 99%, no sample with two span_ids.

    python benchmarks/attribution/servers.py [--rounds 3] [--chunk-ms 0.3] [--depth 2]
        [--servers ...] [--samplers stack,pyspy] [--labels frames]
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
from samplers import INFO_NAMES, SAMPLERS, check, info_sampler, sampler_env  # noqa: E402
from web import serve_and_score, web_env  # noqa: E402

BIN = Path(sys.executable).parent
SERVERS = ("prefork-wsgi", "gunicorn-sync", "gevent", "uvicorn-workers", "granian-asgi")
LABELS = ("frames", "tags")
PRECISION, RECALL = 0.995, 0.99

Variant = tuple[str, str]  # (sampler, span labels)


def server_command(server: str, port: int) -> tuple[list[str], bool]:
    """The server's command line, and whether its clients keep connections alive."""
    if server == "prefork-wsgi":
        return [
            str(BIN / "uwsgi"), "--master", "--processes", "2", "--die-on-term",
            "--http-socket", f"127.0.0.1:{port}", "--chdir", str(HERE),
            "--wsgi-file", "server_app.py", "--callable", "app", "--disable-logging",
        ], False  # fmt: skip
    if server == "gunicorn-sync":
        return [
            str(BIN / "gunicorn"), "-w", "2", "--chdir", str(HERE),
            "-b", f"127.0.0.1:{port}", "server_app:app",
        ], False  # fmt: skip
    if server == "uvicorn-workers":
        return [
            sys.executable, "-m", "uvicorn", "--workers", "2", "--app-dir", str(HERE),
            "--port", str(port), "--no-access-log", "web_app:app",
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
    server: str,
    variant: Variant,
    chunk_ms: float,
    depth: int,
    *,
    clients: int = 12,
    seconds: float = 4.0,
) -> Score:
    """One run of ``server`` with ``variant``'s sampler and span labels, scored."""
    sampler, labels = variant
    keep_alive = server_command(server, 0)[1]
    with RecordingReceiver() as receiver:
        env = web_env(
            receiver, chunk_ms, 20, depth, PYROSPAN_SPAN_LABELS=labels, **sampler_env(sampler)
        )
        return serve_and_score(
            receiver,
            lambda port: server_command(server, port)[0],
            env,
            clients=clients,
            seconds=seconds,
            keep_alive=keep_alive,
        )[0]


def percent(value: float) -> str:
    return "n/a" if value != value else f"{value * 100:.1f}%"


def variants_run(samplers: list[str], labels: list[str]) -> list[Variant]:
    """Each (sampler, labels) pair pyrospan-run would run as asked; the others said and left."""
    check(samplers)
    variants = []
    for sampler in samplers:
        for method in labels:
            said = info_sampler(sampler, PYROSPAN_SPAN_LABELS=method)
            if said == INFO_NAMES[sampler] or (not said and sampler == "pyspy"):
                variants.append((sampler, method))
            else:
                print(f"skipped {sampler} with {method}: --info says {said}", file=sys.stderr)
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunk-ms", type=float, default=0.3)
    parser.add_argument("--depth", type=int, default=2, help="frames between endpoint and CPU")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--samplers", default=",".join(SAMPLERS))
    parser.add_argument("--labels", default="frames", help="span label methods: frames,tags")
    args = parser.parse_args()
    servers = args.servers.split(",")
    variants = variants_run(args.samplers.split(","), args.labels.split(","))
    results: dict[tuple[str, Variant], list[Score]] = {}
    for round_number in range(args.rounds):
        for server in servers:
            order = variants if round_number % 2 == 0 else list(reversed(variants))
            for variant in order:
                result = run_server(server, variant, args.chunk_ms, args.depth)
                results.setdefault((server, variant), []).append(result)
                print(
                    f"round {round_number + 1} {server:<15} {' '.join(variant):<13} precision "
                    f"{percent(result.precision)} recall {percent(result.recall)} two span_ids "
                    f"{result.conflicts} ({result.judged_ms:.0f} ms judged)",
                    file=sys.stderr,
                    flush=True,
                )
    print(
        f"\nServers, median of {args.rounds} interleaved rounds (two workers, 12 clients, "
        f"20 chunks of {args.chunk_ms:g} ms per request, depth {args.depth}; Python "
        f"{sys.version_info.major}.{sys.version_info.minor})\n"
    )
    print("| server | sampler | labels | precision | recall | two span_ids | target met |")
    print("|---|---|---|---|---|---|---|")
    for server in servers:
        for variant in variants:
            runs = results[(server, variant)]
            precision = statistics.median(
                r.precision if r.precision == r.precision else 0.0 for r in runs
            )
            recall = statistics.median(r.recall for r in runs)
            conflicts = sum(r.conflicts for r in runs)
            met = precision >= PRECISION and recall >= RECALL and conflicts == 0
            print(
                f"| {server} | {variant[0]} | {variant[1]} | {percent(precision)} | "
                f"{percent(recall)} | {conflicts} | {'yes' if met else 'no'} |"
            )


if __name__ == "__main__":
    main()
