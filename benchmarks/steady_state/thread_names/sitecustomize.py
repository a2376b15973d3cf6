"""Benchmark shim: each Python thread's name becomes its OS name, so /proc can tell them apart.

Linux shows a thread's ``comm`` in ``/proc/<pid>/task/<tid>/comm``; before Python 3.14,
``threading`` leaves it at the process's name, so every thread reads ``python``.
``thread_share.py --by-thread`` puts this folder on the served app's ``PYTHONPATH``;
pyrospan-run runs it after its own bootstrap, as it runs any app's sitecustomize.  It
names the threads already running (the relay, the span exporter), and every thread
started later as it starts.  A ``pyrospan-`` prefix is dropped, since the kernel keeps
15 bytes.  Threads that native code started (pyroscope-io's sampler and uploader) keep
the process's name.  Benchmark use only: it patches a private method of ``threading``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import threading
from typing import Any

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_set_name = _libc.pthread_setname_np
_set_name.argtypes = [ctypes.c_ulong, ctypes.c_char_p]


def _os_name(thread: threading.Thread) -> bytes:
    return thread.name.removeprefix("pyrospan-").encode()[:15]


def _name(thread: threading.Thread, ident: int | None) -> None:
    if ident is not None:
        _set_name(ident, _os_name(thread))


def _install() -> None:
    for running in threading.enumerate():
        if running is not threading.main_thread():
            _name(running, running.ident)
    started = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]

    def bootstrap_named(self: threading.Thread, *args: Any) -> Any:
        # The thread's ident is set only inside the method; this is the thread itself.
        with contextlib.suppress(Exception):  # a name is only a convenience
            _name(self, threading.get_ident())
        return started(self, *args)

    threading.Thread._bootstrap_inner = bootstrap_named  # type: ignore[attr-defined]


_install()
