"""The steady state's aiohttp app: the FastAPI example's recommendations endpoint, in aiohttp.

OpenTelemetry's aiohttp server instrumentation opens each request's span in the task step
that runs the handler; under pyrospan-run the handler is awaited inside the span's marker
from that step on (agent/spans/aiohttp_frames).  The work per request is the FastAPI
example's, scored in slices with an ``await`` between them, so the two apps' costs compare.

    python aiohttp_app.py PORT
"""

from __future__ import annotations

import asyncio
import heapq
import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "fastapi_app"))
from app import score_recommendations


async def recommendations(request: web.Request) -> web.Response:
    products = int(request.query.get("products", "800"))
    best: list[tuple[int, int]] = []
    for first in range(0, products, 2_000):
        best = heapq.nlargest(10, best + score_recommendations(first, min(2_000, products - first)))
        await asyncio.sleep(0)
    return web.json_response({"products": products, "top": [product for _, product in best]})


def main(port: int) -> None:
    app = web.Application()
    app.router.add_get("/recommendations", recommendations)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))
