"""PYTHONPATH edits that the launcher and the agent both make: one directory in, or out.

The launcher puts the bootstrap directory first on the child's PYTHONPATH; the bootstrap
takes it off while it initialises (so a child started then is not bootstrapped twice)
and puts it back afterwards, so the app's own children inherit it.
"""

from __future__ import annotations

import os


def python_path_with(directory: str, python_path: str | None) -> str:
    """PYTHONPATH with ``directory`` first, exactly once, the user's entries kept in order.

    An unset or empty PYTHONPATH gives just ``directory``: a trailing separator would
    put the current directory on the child's path, which plain python does not do.
    """
    entries = python_path.split(os.pathsep) if python_path else []
    kept = [entry for entry in entries if not same_dir(entry, directory)]
    return os.pathsep.join([directory, *kept])


def python_path_without(directory: str, python_path: str | None) -> str:
    """PYTHONPATH with every occurrence of ``directory`` removed."""
    entries = python_path.split(os.pathsep) if python_path else []
    return os.pathsep.join(entry for entry in entries if not same_dir(entry, directory))


def same_dir(entry: str, directory: str) -> bool:
    """True when the PYTHONPATH ``entry`` names ``directory`` (an empty entry never does)."""
    # An empty entry means "the current directory" to Python: keep it, it is the user's.
    return bool(entry) and os.path.abspath(entry) == os.path.abspath(directory)
