"""A FastAPI app for uvicorn and its gunicorn worker: CPU in its own function, answers its pid."""

import asyncio
import os
import time

from fastapi import FastAPI

app = FastAPI()


def handle_work(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@app.get("/work")
async def work() -> dict[str, int]:
    handle_work(0.3)
    return {"pid": os.getpid()}


@app.get("/burst")
async def burst() -> dict[str, int]:
    handle_work(0.1)  # in the request's first step, which opened its span
    await asyncio.sleep(0.01)  # the request suspends
    handle_work(0.1)
    return {"pid": os.getpid()}
