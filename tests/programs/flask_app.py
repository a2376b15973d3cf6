"""A Flask app with a CPU-heavy endpoint, served by gunicorn or `flask run` in the tests."""

import os
import time

from flask import Flask

app = Flask(__name__)


def render_invoice(seconds: float) -> int:
    count = 0
    end = time.process_time() + seconds
    while time.process_time() < end:
        count += 1
    return count


@app.route("/invoice")
def invoice() -> dict[str, object]:
    render_invoice(0.6)
    return {"pid": os.getpid()}
