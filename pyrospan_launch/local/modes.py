"""The three local-mode commands: ``--local COMMAND``, ``--serve`` and ``--render DIR``.

* ``--local``: receiver and live page on 127.0.0.1, the program as a child pointed at
  them; when it exits, a terminal summary, ``report.html`` and ``pprof/`` in the report
  directory, and the program's own exit status.  Each run replaces the report directory's
  earlier data.
* ``--serve``: the receiver and live page alone, for several processes, until Ctrl-C or
  SIGTERM; its data is added to what the directory already holds.
* ``--render``: the summary, report and pprof files again from the stored data.

Everything the launcher says goes to stderr: the program's stdout stays its own.
"""

from __future__ import annotations

import datetime
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Final

from pyrospan_launch.local import environment, html, page, pprof, summary, supervisor, views
from pyrospan_launch.local.store import Store, StoreError, open_existing
from pyrospan_launch.receiver.server import Receiver

PROG: Final = "pyrospan-run"
DB_FILE: Final = "pyrospan.sqlite"
REPORT_FILE: Final = "report.html"
#: Root spans listed in the report (the latest) and the most flame graphs embedded.
REPORT_SPAN_LIMIT: Final = 5000
REPORT_FLAME_LIMIT: Final = 1000
DEFAULT_SERVE_PORT: Final = 4040
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130


def say(message: str) -> None:
    """One ``pyrospan-run:`` line on stderr."""
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _say_in_handler(message: str) -> None:
    # From a signal handler: os.write takes no lock that the interrupted code may hold.
    os.write(2, f"{PROG}: {message}\n".encode(errors="replace"))


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _report_dir(raw: str) -> Path | None:
    directory = Path(raw)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        say(f"cannot use report directory {raw}: {exc.strerror or exc}")
        return None
    return directory


def _start_receiver(store: Store, port: int, report_dir: Path) -> Receiver | None:
    live = page.LivePage(store, report_path=report_dir / REPORT_FILE)
    receiver = Receiver(
        port=port,
        on_profiles=[store.add_profiles],
        on_spans=[store.add_spans],
        pages=live,
    )
    try:
        return receiver.start()
    except OSError as exc:
        say(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}; choose another --port")
        return None


def write_outputs(store: Store, report_dir: Path, errors: Sequence[str] = ()) -> bool:
    """Print the summary and write the report and pprof files; False if a file failed."""
    text = summary.render(
        views.group_stats(store), views.process_stats(store), store.queries.root_span_count()
    )
    print(f"\n{text}\n", file=sys.stderr, flush=True)
    if errors:
        say(f"{len(errors)} payload(s) could not be stored; the first: {errors[0]}")
    if store.ignored_profiles:
        say(f"{store.ignored_profiles} non-CPU profile(s) were not stored (local mode shows CPU)")
    try:
        report = write_report(store, report_dir)
        files = pprof.write_all(store, report_dir)
    except OSError as exc:
        say(f"cannot write the report in {report_dir}: {exc.strerror or exc}")
        return False
    left_out = f" (and {files.spans_left_out} smaller left out)" if files.spans_left_out else ""
    print(
        f"Report: {report}  (self-contained: opens in a browser with no network)\n"
        f"pprof:  {files.directory}/  ({files.spans_written} span profiles{left_out} "
        f"and {pprof.PROCESS_FILE}; go tool pprof -http=: FILE)\n"
        f"Data:   {report_dir / DB_FILE}  (pyrospan-run --render {report_dir} writes these again)",
        file=sys.stderr,
        flush=True,
    )
    return True


def write_report(store: Store, report_dir: Path) -> Path:
    """Write ``report.html`` (page, script, style and data in one file) and return its path."""
    flames, left_out = views.report_flames(store, span_limit=REPORT_FLAME_LIMIT)
    document = views.summary_document(
        store, span_limit=REPORT_SPAN_LIMIT, generated=_now(), flames_left_out=left_out
    )
    title = "Span profiles " + ", ".join(document["services"])
    data = {"mode": "report", "summary": document, "flames": flames}
    text = html.render(data, title=title, live=False)
    path = report_dir / REPORT_FILE
    temporary = path.with_suffix(".html.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)  # a browser reloading it never sees half a file
    return path


def run_local(
    path: str,
    argv: Sequence[str],
    env: dict[str, str],
    report_dir: str,
    port: int,
    *,
    shown: Sequence[str] = (),
    debug: bool = False,
) -> int:
    """``--local``: run the program against a local receiver; return its exit status.

    ``shown`` is the command as the user typed it, for the summary and the report;
    ``debug`` (PYROSPAN_LOG_LEVEL=debug) reports what happens to each signal.
    """
    command_line = shlex.join(shown or argv)
    directory = _report_dir(report_dir)
    if directory is None:
        return EXIT_USAGE
    try:
        store = Store(directory / DB_FILE, fresh=True)
    except StoreError as exc:
        say(str(exc))
        return EXIT_USAGE
    store.set_meta(command=command_line, mode="local", started=_now())
    receiver = _start_receiver(store, port, directory)
    if receiver is None:
        store.close()
        return EXIT_USAGE
    say(f"live span profiles at {receiver.url}/ while the program runs")
    try:
        status = supervisor.run(
            path,
            argv,
            environment.pointed_at(env, receiver.url),
            _say_in_handler if debug else None,
        )
    except OSError as exc:
        receiver.stop()
        store.close()
        say(f"cannot run {argv[0]}: {exc.strerror or exc}")
        return 126
    try:
        # The program sent its last spans and profile as it exited; let stragglers
        # (a worker's last upload) land.
        _wait_until_quiet(store)
        receiver.stop()
        store.set_meta(exit_code=str(status), finished=_now())
        say(f"{summary.printable(command_line, 200)} exited with status {status}")
        write_outputs(store, directory, receiver.errors)
    except KeyboardInterrupt:
        say(f"interrupted: report not written (pyrospan-run --render {directory} writes it)")
    finally:
        receiver.stop()
        store.close()
    return status


def _wait_until_quiet(store: Store, quiet: float = 0.3, limit: float = 3.0) -> None:
    deadline = time.monotonic() + limit
    while store.seconds_since_write < quiet and time.monotonic() < deadline:
        time.sleep(0.05)


def serve(report_dir: str, port: int) -> int:
    """``--serve``: receive from any number of processes until Ctrl-C or SIGTERM."""
    directory = _report_dir(report_dir)
    if directory is None:
        return EXIT_USAGE
    try:
        store = Store(directory / DB_FILE)
    except StoreError as exc:
        say(str(exc))
        return EXIT_USAGE
    store.set_meta(mode="serve", started=_now())
    receiver = _start_receiver(store, port, directory)
    if receiver is None:
        store.close()
        return EXIT_USAGE
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in supervisor.FORWARDED}
    try:
        say(f"receiving span profiles on {receiver.url}; live page {receiver.url}/")
        say(f"data in {directory / DB_FILE}; Ctrl-C stops and writes the report")
        print(
            "Point programs here (pyrospan-run PROGRAM, or any Pyroscope/OTLP client):\n  "
            + "\n  ".join(environment.export_lines(receiver.url)),
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            pass
        receiver.stop()
        store.set_meta(finished=_now())
        write_outputs(store, directory, receiver.errors)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        receiver.stop()
        store.close()
    return 0


def render(report_dir: str) -> int:
    """``--render DIR``: the summary, report and pprof files again from DIR's data."""
    directory = Path(report_dir)
    try:
        store = open_existing(directory / DB_FILE)
    except StoreError as exc:
        say(str(exc))
        return EXIT_USAGE
    try:
        meta = store.queries.meta()
        if "command" in meta:
            status = f", exit status {meta['exit_code']}" if "exit_code" in meta else ""
            say(f"data of `{summary.printable(meta['command'], 200)}`{status}")
        return 0 if write_outputs(store, directory) else 1
    finally:
        store.close()
