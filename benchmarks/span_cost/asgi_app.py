"""A small FastAPI app for the request-rate comparison: a few awaits, a little CPU per request."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

app = FastAPI()


def render(items: int) -> int:
    return sum(i * i for i in range(items))


@app.get("/item")
async def item() -> dict[str, int]:
    for _ in range(3):  # awaits, as a request using a database would
        await asyncio.sleep(0)
    return {"value": render(300)}
