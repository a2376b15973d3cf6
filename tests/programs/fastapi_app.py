"""A FastAPI app whose endpoints burn CPU in functions of their own, async and sync (def)."""

import asyncio
import time

from fastapi import FastAPI

app = FastAPI()


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def render_catalog(seconds: float) -> None:
    _burn(seconds)


def render_basket(seconds: float) -> None:
    _burn(seconds)


def export_invoices(seconds: float) -> None:
    _burn(seconds)


def export_receipts(seconds: float) -> None:
    _burn(seconds)


@app.get("/catalog")
async def catalog() -> dict[str, str]:
    for _ in range(30):  # yields between slices, so concurrent requests interleave
        render_catalog(0.01)
        await asyncio.sleep(0)
    return {"page": "catalog"}


@app.get("/basket")
async def basket() -> dict[str, str]:
    for _ in range(30):
        render_basket(0.01)
        await asyncio.sleep(0)
    return {"page": "basket"}


@app.get("/invoices")
def invoices() -> dict[str, str]:  # a plain def: Starlette runs it in an anyio worker thread
    export_invoices(0.3)
    return {"export": "invoices"}


@app.get("/receipts")
def receipts() -> dict[str, str]:
    export_receipts(0.3)
    return {"export": "receipts"}
