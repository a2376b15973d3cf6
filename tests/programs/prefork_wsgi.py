"""A Flask app for prefork servers: each request burns CPU in its own function, answers its pid."""

import os
import time

from flask import Flask

app = Flask(__name__)


def handle_work(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@app.route("/work")
def work() -> dict[str, int]:
    handle_work(0.3)
    return {"pid": os.getpid()}
