"""An invoicing service in Flask: one CPU-heavy endpoint, one that waits on I/O.

It knows nothing about tracing or profiling. Served under pyrospan-run, each request is a
root span linked to the CPU samples of the code it ran:

    pyrospan-run gunicorn -w 2 -b 127.0.0.1:8000 app:app
"""

from __future__ import annotations

import time

from flask import Flask, request

app = Flask(__name__)

MAX_LINES = 2_000_000


def compute_invoice_totals(lines: int) -> float:
    """CPU-heavy: prices every invoice line with a slow, made-up tax rule."""
    total = 0.0
    for line in range(lines):
        price = (line * 7919) % 1000 / 100
        for band in range(1, 25):
            if price > band:
                total += price * 0.001 * band
            else:
                total += price * 0.0005
    return round(total, 2)


def fetch_shipping_quote(seconds: float) -> str:
    """I/O-bound: waits on a carrier's API (here a sleep), using almost no CPU."""
    time.sleep(seconds)
    return "standard"


@app.get("/")
def index() -> dict[str, str]:
    """What this service offers."""
    return {"service": "invoices", "cpu": "/invoice?lines=N", "io": "/shipping?wait=S"}


@app.get("/invoice")
def invoice() -> dict[str, object]:
    """CPU-heavy: the total of an invoice of ``lines`` lines."""
    lines = min(request.args.get("lines", 200_000, type=int), MAX_LINES)
    return {"lines": lines, "total": compute_invoice_totals(lines)}


@app.get("/shipping")
def shipping() -> dict[str, object]:
    """I/O-bound: a shipping quote, after waiting ``wait`` seconds."""
    wait = min(request.args.get("wait", 0.2, type=float), 2.0)
    return {"quote": fetch_shipping_quote(wait), "waited": wait}
