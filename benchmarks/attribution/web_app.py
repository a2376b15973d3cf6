"""An async FastAPI service whose endpoints burn CPU in chunks, awaiting between them.

Each endpoint burns in a function of its own (endpoint_work.py) with an ``await`` after
each chunk, as a handler that talks to a database does, below ``WEB_DEPTH`` frames of
async layers that all suspend at that ``await``.  Run it under uvicorn (see web.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from endpoint_work import CHUNK, CHUNKS, LAYERS, price_basket, render_account, search_products
from fastapi import FastAPI
from layers import layered

app = FastAPI()


async def _chunks(burn: Callable[[float], None]) -> None:
    for _ in range(CHUNKS):
        burn(CHUNK)
        await asyncio.sleep(0)


@app.get("/search")
async def search() -> dict[str, str]:
    await layered(LAYERS, lambda: _chunks(search_products))
    return {"page": "search"}


@app.get("/basket")
async def basket() -> dict[str, str]:
    await layered(LAYERS, lambda: _chunks(price_basket))
    return {"page": "basket"}


@app.get("/account")
async def account() -> dict[str, str]:
    await layered(LAYERS, lambda: _chunks(render_account))
    return {"page": "account"}
