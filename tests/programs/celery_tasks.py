"""A celery app on kombu's filesystem broker (a directory, no server): one CPU-heavy task.

BROKER_DIR names the directory; `python celery_tasks.py N` sends N tasks and prints the
pids of the worker processes that ran them.
"""

import os
import sys
import time

from celery import Celery

BROKER_DIR = os.environ["BROKER_DIR"]

app = Celery("celery_tasks", broker="filesystem://", backend=f"file://{BROKER_DIR}/results")
app.conf.broker_transport_options = {
    "data_folder_in": f"{BROKER_DIR}/queue",
    "data_folder_out": f"{BROKER_DIR}/queue",
    "processed_folder": f"{BROKER_DIR}/processed",
    # kombu keeps broadcast state in ./control by default: keep it out of the caller's cwd.
    "control_folder": f"{BROKER_DIR}/control",
    "polling_interval": 0.1,
}
app.conf.broker_connection_retry_on_startup = True


def celery_task_work(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


@app.task  # type: ignore[untyped-decorator]  # celery ships no types
def crunch(n: int) -> int:
    celery_task_work(0.3)
    return os.getpid()


if __name__ == "__main__":
    # By its module name, so the task is named as the worker knows it (not __main__.crunch).
    from celery_tasks import crunch as task

    results = [task.delay(i) for i in range(int(sys.argv[1]))]
    print(" ".join(str(pid) for pid in sorted({r.get(timeout=60) for r in results})))
