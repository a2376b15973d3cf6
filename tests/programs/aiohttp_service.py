"""An aiohttp server whose handler burns CPU before its first await and after it.

aiohttp runs a request's handler in the task step that OpenTelemetry's server middleware
opens the request span in: that step began outside any span, so only a marker that the
middleware's call of the handler runs in (aiohttp_frames) labels it.  ``/work`` burns
80 ms in ``burn_before_await``, awaits, then 40 ms in ``burn_after_await``.

    pyrospan-run python aiohttp_service.py PORT
"""

import asyncio
import sys
import time

from aiohttp import web


def burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def burn_before_await() -> None:
    burn(0.08)


def burn_after_await() -> None:
    burn(0.04)


async def work(request: web.Request) -> web.Response:
    burn_before_await()
    await asyncio.sleep(0)
    burn_after_await()
    return web.Response(text="done")


def main(port: int) -> None:
    app = web.Application()
    app.router.add_get("/work", work)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))
