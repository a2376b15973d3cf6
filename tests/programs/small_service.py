"""A Flask service on werkzeug's threaded server: /work burns a little CPU, /quit ends it.

Prints ``listening <port>`` once it serves, and ``appdone <monotonic time>`` as the last
thing the app does before it exits with status 0.
"""

import logging
import sys
import threading
import time

from flask import Flask
from werkzeug.serving import make_server

app = Flask(__name__)
logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request


def handle_work(seconds: float) -> int:
    count = 0
    end = time.process_time() + seconds
    while time.process_time() < end:
        count += 1
    return count


@app.route("/work")
def work() -> str:
    handle_work(0.005)
    return "ok"


@app.route("/quit")
def quit_app() -> str:
    threading.Thread(target=server.shutdown).start()
    return "bye"


server = make_server("127.0.0.1", 0, app, threaded=True)
print("listening", server.server_port, flush=True)
server.serve_forever()
print("appdone", time.monotonic(), flush=True)
sys.exit(0)
