"""A small, bounded load for the example app: a few requests to each endpoint, on loopback only.

Standard library only, so it runs with any Python:

    python load.py                                  # 20 requests, 2 at a time, http://127.0.0.1:8000
    python load.py --requests 6 --path /invoice     # only the CPU-heavy endpoint
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from itertools import cycle, islice
from urllib.parse import urlsplit

PATHS = ["/invoice", "/shipping"]  # the CPU-heavy endpoint, then the I/O-bound one
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_REQUESTS, MAX_CONCURRENCY, MAX_SECONDS = 500, 8, 120.0


def fetch(url: str, deadline: float) -> tuple[str, float, str | None]:
    """One GET; returns (url, milliseconds, error or None). Nothing is sent after the deadline."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return url, 0.0, "not sent: time limit reached"
    start = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=remaining) as response:
            response.read()
    except OSError as exc:
        return url, (time.monotonic() - start) * 1000, str(exc)
    return url, (time.monotonic() - start) * 1000, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="base URL (loopback only)")
    parser.add_argument("--requests", type=int, default=20, help=f"total, at most {MAX_REQUESTS}")
    parser.add_argument("--concurrency", type=int, default=2, help=f"at most {MAX_CONCURRENCY}")
    parser.add_argument("--max-seconds", type=float, default=60, help=f"at most {MAX_SECONDS:.0f}")
    parser.add_argument("--path", action="append", help=f"endpoint(s) to hit; default {PATHS}")
    args = parser.parse_args(argv)
    if urlsplit(args.url).hostname not in LOOPBACK:
        parser.error(f"--url {args.url}: this load script only talks to 127.0.0.1 or localhost")
    count = max(1, min(args.requests, MAX_REQUESTS))
    workers = max(1, min(args.concurrency, MAX_CONCURRENCY))
    deadline = time.monotonic() + max(1.0, min(args.max_seconds, MAX_SECONDS))
    urls = [args.url.rstrip("/") + path for path in islice(cycle(args.path or PATHS), count)]
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda url: fetch(url, deadline), urls))
    failed = 0
    for url in dict.fromkeys(urls):
        times = [ms for u, ms, error in results if u == url and error is None]
        errors = [error for u, _, error in results if u == url and error is not None]
        failed += len(errors)
        median = f"{statistics.median(times):.0f} ms" if times else "-"
        print(f"{url}: {len(times)} ok, {len(errors)} failed, median {median}")
        for error in sorted(set(errors)):
            print(f"  error: {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
