"""A FastAPI app for uvicorn and its gunicorn worker: CPU in its own function, answers its pid."""

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
