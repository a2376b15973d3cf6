"""Thread tags set while pyrospan-run moves the profiler from the Stack sampler to py-spy.

The app's first thread tag moves the process to py-spy: pyroscope-io's agent stops and a
new one starts, on pyrospan-run's ``pyrospan-sampler-switch`` thread.  One case per
argument:

* ``worker``: a second thread waits until that move runs, tags itself then
  (``worker=w1``) and burns CPU in ``burn_tagged_worker``.  Prints whether the tag was set
  while the move ran.
* ``slow``: another thread spins while ``sys.setswitchinterval(1.0)`` lets it keep the GIL
  for up to a second at a time, so the move (whose thread needs the GIL) outlasts the half
  second the app waits for it.  The app's tag, set then, is lost.

Prints ``done`` at the end.
"""

from __future__ import annotations

import sys
import threading
import time

import pyroscope


def moving() -> bool:
    return any(thread.name == "pyrospan-sampler-switch" for thread in threading.enumerate())


def burn_tagged_worker(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def tag_during_the_move() -> None:
    during: list[bool] = []

    def worker() -> None:
        deadline = time.monotonic() + 10
        while not moving() and time.monotonic() < deadline:
            time.sleep(0.0002)
        during.append(moving())
        pyroscope.add_thread_tag("worker", "w1")
        burn_tagged_worker(0.5)
        pyroscope.remove_thread_tag("worker", "w1")

    thread = threading.Thread(target=worker, name="tagging-worker")
    thread.start()
    time.sleep(0.1)
    pyroscope.add_thread_tag("request", "r1")  # the app's first tag: the move starts
    thread.join()
    pyroscope.remove_thread_tag("request", "r1")
    print("tagged during the move" if during[0] else "tagged outside the move", flush=True)


def tag_while_the_gil_is_held() -> None:
    sys.setswitchinterval(1.0)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    spinner = threading.Thread(target=spin, name="gil-holder")
    spinner.start()
    time.sleep(0.05)
    pyroscope.add_thread_tag("request", "r1")
    stop.set()
    spinner.join()
    sys.setswitchinterval(0.005)


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        tag_during_the_move()
    else:
        tag_while_the_gil_is_held()
    print("done", flush=True)
