"""A Flask service whose endpoints burn CPU in chunks, yielding between them.

Each endpoint burns in a function of its own (endpoint_work.py), with ``time.sleep(0)``
after each chunk: under gevent's monkey-patching that yields to the other requests'
greenlets, as a handler that talks to a database does; elsewhere it costs a system
call.  ``WEB_DEPTH`` adds plain layers of calls above the chunk loop.  Served by
servers.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from endpoint_work import (
    CHUNK,
    CHUNKS,
    LAYERS,
    price_basket,
    render_account,
    search_products,
)
from flask import Flask
from layers import descend

app = Flask(__name__)


def _chunks(burn: Callable[[float], None]) -> None:
    for _ in range(CHUNKS):
        burn(CHUNK)
        time.sleep(0)


def _work(burn: Callable[[float], None]) -> None:
    if LAYERS:
        descend(LAYERS, _chunks, burn)
    else:
        _chunks(burn)


@app.get("/search")
def search() -> dict[str, str]:
    _work(search_products)
    return {"page": "search"}


@app.get("/basket")
def basket() -> dict[str, str]:
    _work(price_basket)
    return {"page": "basket"}


@app.get("/account")
def account() -> dict[str, str]:
    _work(render_account)
    return {"page": "account"}


@app.get("/docs")
def docs() -> str:
    return "ready"
