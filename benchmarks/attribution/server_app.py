"""A Flask service whose endpoints burn CPU in chunks, yielding between them.

Each endpoint burns in a function of its own, ``WEB_CHUNKS`` chunks of ``WEB_CHUNK_MS``
milliseconds of CPU, with ``time.sleep(0)`` after each: under gevent's monkey-patching
that yields to the other requests' greenlets, as a handler that talks to a database
does; elsewhere it costs a system call.  Served by servers.py.
"""

from __future__ import annotations

import os
import time

from flask import Flask

CHUNK = float(os.environ.get("WEB_CHUNK_MS", "0.3")) / 1000
CHUNKS = int(os.environ.get("WEB_CHUNKS", "20"))

app = Flask(__name__)


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def search_products(seconds: float) -> None:
    _burn(seconds)


def price_basket(seconds: float) -> None:
    _burn(seconds)


def render_account(seconds: float) -> None:
    _burn(seconds)


def _chunks(burn: object) -> None:
    for _ in range(CHUNKS):
        burn(CHUNK)  # type: ignore[operator]
        time.sleep(0)


@app.get("/search")
def search() -> dict[str, str]:
    _chunks(search_products)
    return {"page": "search"}


@app.get("/basket")
def basket() -> dict[str, str]:
    _chunks(price_basket)
    return {"page": "basket"}


@app.get("/account")
def account() -> dict[str, str]:
    _chunks(render_account)
    return {"page": "account"}


@app.get("/docs")
def docs() -> str:
    return "ready"
