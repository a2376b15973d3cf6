"""A gevent or eventlet app: monkey-patched first, a Flask app served by the library's WSGI server.

``python green_wsgi.py gevent|eventlet PORT``; each request burns 300 ms of CPU in its own
function in turns of 7 ms, yielding to the other requests' greenlets between them, and
answers its pid.
"""

import sys

LIBRARY = sys.argv[1]
if LIBRARY == "gevent":
    from gevent import monkey

    monkey.patch_all()
else:
    import eventlet

    eventlet.monkey_patch()

import os  # noqa: E402
import time  # noqa: E402

from flask import Flask  # noqa: E402

app = Flask(__name__)


def handle_work(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


# Turns of 7 ms, not 10: the CPU samplers take a sample every 10 ms, and turns of the same
# length alias with them.  The requests take turns in a fixed order, so a request whose
# turns keep ending just before a sample loses most of its samples to the next one, run
# after run (80 ms to 520 ms shown of each request's 300, either sampler, on 3.13).
@app.route("/work")
def work() -> dict[str, int]:
    for _ in range(43):
        handle_work(0.007)
        time.sleep(0)  # patched: the other requests' greenlets run
    return {"pid": os.getpid()}


if __name__ == "__main__":
    port = int(sys.argv[2])
    if LIBRARY == "gevent":
        from gevent.pywsgi import WSGIServer

        WSGIServer(("127.0.0.1", port), app, log=None).serve_forever()
    else:
        import eventlet.wsgi

        eventlet.wsgi.server(eventlet.listen(("127.0.0.1", port)), app, log_output=False)
