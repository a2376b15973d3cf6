"""An async FastAPI service whose endpoints burn CPU in chunks, awaiting between them.

Each endpoint burns in a function of its own, ``WEB_CHUNKS`` chunks of ``WEB_CHUNK_MS``
milliseconds of CPU, with an ``await`` after each, as a handler that talks to a
database does.  Run it under uvicorn (see web.py).
"""

from __future__ import annotations

import asyncio
import os
import time

from fastapi import FastAPI

CHUNK = float(os.environ.get("WEB_CHUNK_MS", "0.3")) / 1000
CHUNKS = int(os.environ.get("WEB_CHUNKS", "20"))

app = FastAPI()


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


async def _chunks(burn: object) -> None:
    for _ in range(CHUNKS):
        burn(CHUNK)  # type: ignore[operator]
        await asyncio.sleep(0)


@app.get("/search")
async def search() -> dict[str, str]:
    await _chunks(search_products)
    return {"page": "search"}


@app.get("/basket")
async def basket() -> dict[str, str]:
    await _chunks(price_basket)
    return {"page": "basket"}


@app.get("/account")
async def account() -> dict[str, str]:
    await _chunks(render_account)
    return {"page": "account"}
