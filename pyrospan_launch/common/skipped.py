"""The instrumentations the last run skipped, kept on disk for ``pyrospan-run --info``.

A skipped instrumentation is one ``pyrospan:`` line on the app's stderr, which a test
runner's capture or a log pipeline can hide.  The agent also writes the skips of its
process to one file in the cache directory (:mod:`pyrospan_launch.common.cache`), and
``--info`` lists them with the process, time and command that skipped them.  The file
holds the most recent process that skipped anything; writing it is best effort.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

from pyrospan_launch.common import cache, log

FILE_NAME = "skipped-instrumentations.txt"


def default_path() -> str:
    """The file in the cache directory."""
    return os.path.join(cache.directory(), FILE_NAME)


class SkippedRecord:
    """This process's skipped instrumentations, written out after each one."""

    def __init__(self, path: str | None = None) -> None:
        self._path = path or default_path()
        self._skipped: list[tuple[str, str]] = []

    def add(self, name: str, reason: str) -> None:
        """Note ``name`` as skipped for ``reason`` and rewrite the file (never raises)."""
        self._skipped.append((name, " ".join(reason.split())))
        command = " ".join(" ".join(sys.argv).split())
        header = f"{os.getpid()}\t{time.strftime('%Y-%m-%dT%H:%M:%S%z')}\t{command}"
        text = "\n".join([header, *("\t".join(item) for item in self._skipped)]) + "\n"
        partial = f"{self._path}.{os.getpid()}"
        try:
            os.makedirs(os.path.dirname(self._path), exist_ok=True)
            with open(partial, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(partial, self._path)
        except OSError as exc:
            log.debug(f"could not note skipped instrumentations in {self._path}: {exc}")


@dataclass(frozen=True)
class LastSkips:
    """What the file says: which process skipped which instrumentations, and why."""

    pid: str
    when: str
    command: str
    skipped: list[tuple[str, str]] = field(default_factory=list)


def read(path: str | None = None) -> LastSkips | None:
    """The last run's skips, or None when no run skipped any (or the file is unreadable)."""
    try:
        with open(path or default_path(), encoding="utf-8") as record:
            lines = record.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if not lines or lines[0].count("\t") < 2:
        return None
    pid, when, command = lines[0].split("\t", 2)
    skipped = [tuple(line.split("\t", 1)) for line in lines[1:] if "\t" in line]
    return LastSkips(pid, when, command, skipped)  # type: ignore[arg-type]
