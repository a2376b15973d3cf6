"""Which module imports start OpenTelemetry, remembered between runs.

Knowing them means reading every installed package's entry points, and importing
``importlib.metadata`` to do so costs more than the rest of the bootstrap together.  The
answer only changes when packages are installed or removed, which changes the mtime of the
directory they are installed in, so it is kept in a small file keyed by the interpreter
and the mtimes of the import path's directories.  When the cache cannot be read or
written (a read-only container, no home directory) the bootstrap simply works it out.

The file is plain text, read at every start, so without json (and the re it imports),
which would cost more than reading it: the key's ``repr()`` on the first line,
compared as text, then one line per instrumentation, its name and modules tab-separated.
"""

from __future__ import annotations

import os
import sys
import zlib
from collections.abc import Callable, Mapping

from pyrospan_launch.settings import reads

# Bump when the format or the meaning of the cached list changes.
_FORMAT = 2


def _cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pyrospan-run")


def _environment_key() -> list[object]:
    """What the installed instrumentations depend on: the interpreter and its import path."""
    key: list[object] = [_FORMAT, sys.version, sys.prefix]
    for entry in sys.path:
        try:
            key.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            key.append([entry, None])
    return key


def _cache_file(key: list[object]) -> str:
    digest = zlib.crc32(repr(key[:3]).encode())
    return os.path.join(_cache_dir(), f"triggers-{digest:08x}.txt")


def _dump(key: list[object], triggers: Mapping[str, list[str]]) -> str:
    lines = [repr(key), *("\t".join([name, *modules]) for name, modules in triggers.items())]
    return "\n".join(lines) + "\n"


def _load(text: str, key: list[object]) -> dict[str, list[str]] | None:
    """The triggers ``text`` holds, or None when it was written for another key."""
    first, _, rest = text.partition("\n")
    if first != repr(key):
        return None
    rows = (line.split("\t") for line in rest.split("\n") if line)
    return {name: modules for name, *modules in rows}


def _compute() -> dict[str, list[str]]:
    from pyrospan_launch.common import installed

    return {entry_point.name: modules for entry_point, modules in installed.planned({})}


def by_instrumentation(
    compute: Callable[[], dict[str, list[str]]] = _compute,
) -> dict[str, list[str]]:
    """Installed instrumentation name -> the modules whose first import loads it.

    ``compute`` works the answer out when the cache does not hold it.
    """
    key = _environment_key()
    path = _cache_file(key)
    try:
        with open(path, encoding="utf-8", newline="") as cached:
            stored = _load(cached.read(), key)
        if stored is not None:
            return stored
    except (OSError, ValueError):
        pass
    triggers = compute()
    text = _dump(key, triggers)
    if _load(text, key) != triggers:
        return triggers  # a name with a tab or a line break: not worth a format of its own
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        temporary = f"{path}.{os.getpid()}"
        with open(temporary, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.replace(temporary, path)
    except (OSError, ValueError):
        pass  # read-only file system or no home: work it out again next time
    return triggers


def modules(environ: Mapping[str, str], known: Mapping[str, list[str]] | None = None) -> list[str]:
    """Modules whose first import starts OpenTelemetry, for the enabled instrumentations.

    ``known`` is :func:`by_instrumentation`'s answer, read when not given.
    """
    disabled = reads.disabled_instrumentations(environ)
    if "*" in disabled:
        return []
    found: list[str] = []
    for name, triggers in (by_instrumentation() if known is None else known).items():
        if name not in disabled:
            found += triggers
    return found
