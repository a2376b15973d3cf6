"""The endpoints' work in the web scenarios, shared by the Flask and the FastAPI service.

Each endpoint burns CPU in a function of its own (the judge finds it by name in the
stack), ``WEB_CHUNKS`` chunks of ``WEB_CHUNK_MS`` milliseconds each, yielding between
chunks, ``WEB_DEPTH`` frames below the endpoint: the endpoint, layers of calls
(layers.py) and the function that loops over the chunks.
"""

from __future__ import annotations

import os
import time

CHUNK = float(os.environ.get("WEB_CHUNK_MS", "0.3")) / 1000
CHUNKS = int(os.environ.get("WEB_CHUNKS", "20"))
# Frames between the endpoint's marker and the burning function: the endpoint itself and
# the chunk loop are two of them, so 2 adds no layer.
DEPTH = int(os.environ.get("WEB_DEPTH", "2"))
LAYERS = max(0, DEPTH - 2)


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
