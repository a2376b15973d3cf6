"""A recommendations service in FastAPI: CPU-heavy endpoints (async and plain def) and an I/O one.

It knows nothing about tracing or profiling. Served under pyrospan-run, each request is a
root span linked to the CPU samples of the code it ran, whether the endpoint ran on the
event loop (``async def``) or in Starlette's worker threads (plain ``def``):

    pyrospan-run uvicorn --host 127.0.0.1 --port 8000 app:app
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq

from fastapi import FastAPI, Query

app = FastAPI(title="recommendations")


def score_recommendations(first: int, count: int) -> list[tuple[int, int]]:
    """CPU-heavy: scores products against a customer profile with a made-up model; best 10."""
    scored = []
    for product in range(first, first + count):
        score = 0
        for feature in range(40):
            score += (product * 31 + feature * 17) % 97 * (feature % 5)
        scored.append((score, product))
    return heapq.nlargest(10, scored)


def render_thumbnails(images: int) -> str:
    """CPU-heavy in another way: repeated hashing stands in for image resizing."""
    digest = b"catalogue"
    for _ in range(images * 1_000):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()[:16]


async def query_inventory(seconds: float) -> int:
    """I/O-bound: waits on a database (here an asyncio sleep), using almost no CPU."""
    await asyncio.sleep(seconds)
    return 42


@app.get("/")
async def index() -> dict[str, str]:
    """What this service offers."""
    return {
        "service": "recommendations",
        "cpu (async def)": "/recommendations?products=N",
        "cpu (def, worker thread)": "/thumbnails?images=N",
        "io": "/inventory?wait=S",
    }


@app.get("/recommendations")
async def recommendations(products: int = Query(80_000, ge=1, le=400_000)) -> dict[str, object]:
    """CPU-heavy, async: the top products for a customer."""
    # Scored in slices with an await between them, as a well-behaved async endpoint does, so
    # other requests keep being served; every slice still counts for this request's span.
    best: list[tuple[int, int]] = []
    for first in range(0, products, 2_000):
        best = heapq.nlargest(10, best + score_recommendations(first, min(2_000, products - first)))
        await asyncio.sleep(0)
    return {"products": products, "top": [product for _, product in best]}


@app.get("/thumbnails")
def thumbnails(images: int = Query(1_000, ge=1, le=10_000)) -> dict[str, object]:
    """CPU-heavy, in a worker thread: thumbnails of ``images`` images."""
    # A plain def: Starlette runs it in a worker thread; its samples carry this span too.
    return {"images": images, "etag": render_thumbnails(images)}


@app.get("/inventory")
async def inventory(wait: float = Query(0.2, ge=0, le=2)) -> dict[str, object]:
    """I/O-bound: stock levels, after waiting ``wait`` seconds on the database."""
    return {"in_stock": await query_inventory(wait), "waited": wait}
