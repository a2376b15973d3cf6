"""A tiny "shop" that handles a few requests, each a root span with CPU work of its own.

It knows nothing about profiling: run it under pyrospan-run and every request's span is
linked to the CPU samples of the code it ran.

    pyrospan-run python examples/shop.py
"""

from __future__ import annotations

import hashlib
import time

from opentelemetry import trace

tracer = trace.get_tracer("shop")


def price_cart(items: int) -> float:
    """CPU-heavy: prices every item with a slow, made-up tax rule."""
    total = 0.0
    for item in range(items):
        for step in range(2_000):
            total += ((item * 31 + step) % 97) * 0.01
    return total


def hash_password(rounds: int) -> str:
    """CPU-heavy in another way: repeated hashing, as a login would do."""
    digest = b"correct horse battery staple"
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def handle(name: str, work: float) -> None:
    """One request: a root span around the work, as a web framework would make."""
    with tracer.start_as_current_span(name):
        if name == "POST /checkout":
            price_cart(int(1_500 * work))
        else:
            hash_password(int(600_000 * work))
        time.sleep(0.05)  # waiting on a database: not CPU, so not in the CPU profile


def main() -> None:
    for _ in range(3):
        handle("POST /checkout", 1.0)
        handle("POST /login", 1.0)
    print("shop: handled 6 requests")


if __name__ == "__main__":
    main()
