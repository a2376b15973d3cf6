"""A FastAPI app written for pyroscope-io: it names its profiles when it is imported.

Served by uvicorn (``uvicorn named_fastapi_app:app``); ``/work`` burns CPU in a function
of its own and answers with the id of the request's span.
"""

import os
import time

import pyroscope
from fastapi import FastAPI
from opentelemetry import trace

pyroscope.configure(
    application_name="fastapi-shop",
    server_address=os.environ["PYROSCOPE_SERVER_ADDRESS"],
    upload_interval=1,
)

app = FastAPI()


def fastapi_shop_work(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@app.get("/work")
async def work() -> dict[str, str]:
    fastapi_shop_work(0.4)
    return {"span_id": format(trace.get_current_span().get_span_context().span_id, "016x")}
